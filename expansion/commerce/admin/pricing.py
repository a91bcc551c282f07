"""The pricing designers' admin: good-better-best tier ladders (checked, and previewed side
by side as a customer sees them) and bundles (with their calculator and the affinity that
says their items belong together)."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from expansion.commerce.affinity import pair_lift
from expansion.commerce.models import Bundle, BundleItem, Tier, TierLadder
from expansion.commerce.pricing import (
    BundleLine,
    TierDraft,
    bundle_figures,
    features_clean,
    ladder_check,
)


class TierForm(forms.ModelForm):
    features = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 40}), help_text="One feature per line."
    )

    class Meta:
        model = Tier
        fields = ["position", "name", "price", "audience", "features", "product"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance.features, list):
            self.initial["features"] = "\n".join(self.instance.features)

    def clean_features(self) -> list[str]:
        return list(features_clean(self.cleaned_data["features"]))


class TierFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        drafts = [
            TierDraft(
                position=form.cleaned_data["position"],
                name=form.cleaned_data["name"],
                price=form.cleaned_data["price"],
                features=tuple(form.cleaned_data["features"]),
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        check = ladder_check(
            tiers=drafts,
            intended_winner=self.instance.intended_winner,
            anchor_position=self.instance.anchor_position,
        )
        if check.errors:
            raise ValidationError(check.errors)


class TierInline(admin.StackedInline):
    model = Tier
    form = TierForm
    formset = TierFormSet
    extra = 3
    max_num = 3
    autocomplete_fields = ["product"]

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 0 if obj is not None and obj.tiers.exists() else 3


@admin.register(TierLadder)
class TierLadderAdmin(admin.ModelAdmin):
    list_display = ["name", "tiers_text", "intended_winner", "expected_share", "preview_link"]
    search_fields = ["name"]
    inlines = [TierInline]
    readonly_fields = ["side_by_side"]
    fields = [
        "name",
        "anchor_position",
        "intended_winner",
        "expected_share",
        "honest_comparison",
        "side_by_side",
    ]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("tiers")

    @admin.display(description="Tiers")
    def tiers_text(self, obj: TierLadder) -> str:
        return " · ".join(f"{t.name} {t.price}" for t in obj.tiers.all())

    @admin.display(description="As a customer sees it")
    def preview_link(self, obj: TierLadder) -> str:
        url = reverse("admin:expansion_tierladder_preview", args=[obj.pk])
        return format_html('<a href="{}">Side by side</a>', url)

    @admin.display(description="As a customer sees it")
    def side_by_side(self, obj: TierLadder) -> str:
        if not obj.pk:
            return "Save the ladder to see it side by side."
        return self.preview_link(obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        ladder = form.instance
        tiers = [
            TierDraft(t.position, t.name, t.price, tuple(t.features)) for t in ladder.tiers.all()
        ]
        check = ladder_check(
            tiers=tiers,
            intended_winner=ladder.intended_winner,
            anchor_position=ladder.anchor_position,
        )
        for warning in check.warnings:
            messages.warning(request, warning)

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="expansion_tierladder_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        ladder = get_object_or_404(TierLadder.objects.prefetch_related("tiers"), pk=pk)
        if not self.has_view_permission(request, ladder):
            return HttpResponse(status=403)
        tiers = list(ladder.tiers.all())
        every = []
        for tier in tiers:
            for feature in tier.features:
                if feature not in every:
                    every.append(feature)
        rows = [(feature, [feature in tier.features for tier in tiers]) for feature in every]
        check = ladder_check(
            tiers=[TierDraft(t.position, t.name, t.price, tuple(t.features)) for t in tiers],
            intended_winner=ladder.intended_winner,
            anchor_position=ladder.anchor_position,
        )
        context = {
            **self.admin_site.each_context(request),
            "ladder": ladder,
            "tiers": tiers,
            "rows": rows,
            "check": check,
            "title": f"{ladder.name}: side by side",
            "opts": TierLadder._meta,
        }
        return TemplateResponse(request, "expansion/tier_ladder_preview.html", context)


class BundleItemFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        lines = []
        for form in self.forms:
            data = form.cleaned_data
            if not data or data.get("DELETE"):
                continue
            product = data["product"]
            lines.append(
                BundleLine(product.name, data["quantity"], product.price, product.unit_cost)
            )
        if len(lines) < 2:
            raise ValidationError("A bundle holds at least two products.")
        bundle = self.instance
        figures = bundle_figures(lines=lines, price=bundle.price, margin_floor=bundle.margin_floor)
        errors = []
        if figures.saving <= 0:
            errors.append(
                f"The bundle price {bundle.price} shows no saving on the parts "
                f"({figures.sum_of_parts}): a bundle must be a real saving."
            )
        if figures.unknown_costs:
            errors.append(
                "Unit cost unknown for "
                + ", ".join(figures.unknown_costs)
                + ": the blended margin cannot be checked against the floor."
            )
        elif figures.below_floor:
            errors.append(
                f"Blended gross margin {figures.margin_percent}% at {bundle.price} is below the "
                f"{bundle.margin_floor}% floor."
            )
        if errors:
            raise ValidationError(errors)


class BundleItemInline(admin.TabularInline):
    model = BundleItem
    formset = BundleItemFormSet
    extra = 2
    autocomplete_fields = ["product"]


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ["name", "price", "parts", "saving", "margin", "margin_floor", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    inlines = [BundleItemInline]
    autocomplete_fields = ["product"]
    readonly_fields = ["calculator"]
    fields = ["name", "question", "price", "margin_floor", "product", "is_active", "calculator"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("items__product")

    def _figures(self, obj: Bundle):
        lines = [
            BundleLine(i.product.name, i.quantity, i.product.price, i.product.unit_cost)
            for i in obj.items.all()
        ]
        return bundle_figures(lines=lines, price=obj.price, margin_floor=obj.margin_floor)

    @admin.display(description="Sum of parts")
    def parts(self, obj: Bundle) -> Decimal:
        return self._figures(obj).sum_of_parts

    @admin.display(description="Saving")
    def saving(self, obj: Bundle) -> str:
        figures = self._figures(obj)
        return f"{figures.saving} ({figures.saving_percent}%)"

    @admin.display(description="Blended margin")
    def margin(self, obj: Bundle) -> str:
        value = self._figures(obj).margin_percent
        return "unknown" if value is None else f"{value}%"

    @admin.display(description="Calculator")
    def calculator(self, obj: Bundle) -> str:
        if not obj.pk:
            return "Save with its items to see the figures."
        figures = self._figures(obj)
        margin = "unknown" if figures.margin_percent is None else f"{figures.margin_percent}%"
        pairs = pair_lift(product_ids=[i.product_id for i in obj.items.all()])
        lifts = (
            format_html_join(
                "",
                "<li>{} + {}: lift {} ({} orders together)</li>",
                ((p.product.name, p.other.name, f"{p.lift:.2f}", p.orders_both) for p in pairs),
            )
            if pairs
            else format_html(
                "<li>{}</li>",
                "No pair of these items is bought together often enough to have an affinity yet.",
            )
        )
        return format_html(
            "<table><tr><th>Sum of parts</th><td>{}</td></tr>"
            "<tr><th>Bundle price</th><td>{}</td></tr>"
            "<tr><th>Displayed saving</th><td>{} ({}%)</td></tr><tr><th>Cost</th><td>{}</td></tr>"
            "<tr><th>Blended gross margin</th><td>{} (floor {}%)</td></tr></table>"
            "<p>Evidence they belong together:</p><ul>{}</ul>",
            figures.sum_of_parts,
            obj.price,
            figures.saving,
            figures.saving_percent,
            figures.cost if figures.cost is not None else "unknown",
            margin,
            obj.margin_floor,
            lifts,
        )
