from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from expansion.core.charts import bar_chart
from expansion.core.singleton import SingletonAdmin

from .affinity import affinity_refresh, gate_reasons, pair_lift
from .apikeys import api_key_issue, api_key_revoke
from .metrics import (
    EXACT,
    PERIODS,
    expansion_by_type,
    period_floor,
    revenue_metrics,
    top_opportunities,
)
from .models import (
    ApiKey,
    ApiScope,
    Bundle,
    BundleItem,
    CommerceSettings,
    Moment,
    Offer,
    Order,
    OrderLine,
    PairReview,
    Product,
    ProductAffinity,
    Subscription,
    SubscriptionChange,
    Tier,
    TierLadder,
)
from .pricing import (
    BundleLine,
    TierDraft,
    bundle_figures,
    features_clean,
    ladder_check,
    offer_check,
)

admin.site.site_header = "Expansion"
admin.site.site_title = "Expansion"
admin.site.index_title = "Offers, learners and revenue"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "sku", "kind", "price", "currency", "unit_cost", "margin", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "=sku"]
    list_select_related = ["course"]
    autocomplete_fields = ["course", "attaches_to"]

    @admin.display(description="Gross margin")
    def margin(self, obj: Product) -> str:
        margin = obj.gross_margin
        return "—" if margin is None else f"{margin:.0%}"


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = ["external_id", "product", "quantity", "unit_price", "refunded_amount"]
    autocomplete_fields = ["product"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["external_id", "learner", "placed_at", "total", "currency"]
    list_filter = ["currency"]
    search_fields = ["=external_id", "=learner__external_id", "learner__email"]
    list_select_related = ["learner"]
    raw_id_fields = ["learner"]
    show_full_result_count = False
    date_hierarchy = "placed_at"
    inlines = [OrderLineInline]
    change_list_template = "expansion/order_change_list.html"

    def get_urls(self):
        return [
            path(
                "revenue/",
                self.admin_site.admin_view(revenue_view),
                name="expansion_revenue_dashboard",
            ),
            *super().get_urls(),
        ]

    def get_queryset(self, request: HttpRequest):
        amount = ExpressionWrapper(
            F("lines__unit_price") * F("lines__quantity"),
            output_field=DecimalField(max_digits=14, decimal_places=2),
        )
        return super().get_queryset(request).annotate(total_amount=Sum(amount))

    @admin.display(description="Total", ordering="total_amount")
    def total(self, obj: Order):
        return obj.total_amount  # type: ignore[attr-defined]


class SubscriptionChangeInline(admin.TabularInline):
    model = SubscriptionChange
    extra = 0
    can_delete = False
    fields = ["effective_at", "mrr_before", "mrr_after", "expansion_type", "recorded_at"]
    readonly_fields = ["effective_at", "mrr_before", "mrr_after", "expansion_type", "recorded_at"]
    ordering = ["-effective_at", "-id"]
    verbose_name_plural = "MRR ledger (written by the sync; movements are derived from it)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    inlines = [SubscriptionChangeInline]
    list_display = [
        "external_id",
        "holder",
        "plan",
        "mrr",
        "status",
        "started_at",
        "renews_at",
        "seats",
        "quota",
    ]
    list_filter = ["status", "plan"]
    search_fields = ["=external_id", "=learner__external_id", "=account__external_id"]
    list_select_related = ["learner", "account", "plan"]
    raw_id_fields = ["learner"]
    autocomplete_fields = ["account", "plan"]
    show_full_result_count = False
    date_hierarchy = "started_at"

    @admin.display(description="Holder")
    def holder(self, obj: Subscription):
        return obj.learner or obj.account

    @admin.display(description="Seats")
    def seats(self, obj: Subscription) -> str:
        return "—" if obj.seats_limit is None else f"{obj.seats_used or 0}/{obj.seats_limit}"

    @admin.display(description="Quota")
    def quota(self, obj: Subscription) -> str:
        if not obj.quota_limit:
            return "—"
        return f"{(obj.quota_used or 0) / obj.quota_limit:.0%}"


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple, initial=[ApiScope.READ]
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "scopes",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "=prefix"]
    list_select_related = ["created_by"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes"]
        return [
            "name",
            "scopes",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_key_issue(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,
        )
        obj.pk = issued.api_key.pk
        obj.refresh_from_db()
        messages.warning(
            request,
            f"Copy this key now; it is not stored and will not be shown again: {issued.raw_key}",
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoke instead, so the key's history stays.
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(CommerceSettings)
class CommerceSettingsAdmin(SingletonAdmin):
    """One row: the discount ceiling, the affinity gate and the opportunity thresholds."""

    fieldsets = [
        ("Discounts", {"fields": ["max_discount_percent", "discount_cooldown_days"]}),
        (
            "Affinity and the ethics gate",
            {
                "fields": [
                    "affinity_min_support",
                    "affinity_min_orders",
                    "affinity_min_lift",
                    "affinity_window_days",
                ]
            },
        ),
        (
            "Top opportunities",
            {
                "fields": [
                    "quota_opportunity",
                    "seat_opportunity",
                    "feature_request_events",
                    "feature_request_days",
                ]
            },
        ),
    ]


class OfferForm(forms.ModelForm):
    moments = forms.MultipleChoiceField(
        choices=Moment.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = Offer
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for error in offer_check(
            incentive=data.get("incentive", ""),
            discount_percent=data.get("discount_percent"),
            bonus=data.get("bonus", ""),
            policy=CommerceSettings.load(),
        ):
            self.add_error(None, error)
        fallback = data.get("fallback")
        if fallback is not None and self.instance.pk and fallback.pk == self.instance.pk:
            self.add_error("fallback", "An offer cannot be its own downsell.")
        return data


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    form = OfferForm
    list_display = [
        "name",
        "kind",
        "outcome_gap",
        "product",
        "incentive_text",
        "valid_hours",
        "fallback",
        "is_active",
    ]
    list_filter = ["kind", "outcome_gap", "incentive", "is_active"]
    search_fields = ["name", "product__name", "=product__sku"]
    list_select_related = ["product", "fallback"]
    autocomplete_fields = ["product", "fallback"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "outcome_gap", "product", "is_active"]}),
        (
            "Incentive",
            {
                "fields": ["incentive", "discount_percent", "bonus"],
                "description": "A discount must stay within the ceiling in Commerce settings; "
                "learners who bought at a discount recently get the bonus instead.",
            },
        ),
        (
            "Presentation",
            {"fields": ["positioning", "cta_url", "valid_hours", "moments", "fallback"]},
        ),
    ]

    @admin.display(description="Incentive")
    def incentive_text(self, obj: Offer) -> str:
        if obj.incentive == "discount":
            return f"{obj.discount_percent}% off"
        if obj.incentive == "bonus":
            return f"+ {obj.bonus}"
        return "—"


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


@admin.register(ProductAffinity)
class ProductAffinityAdmin(admin.ModelAdmin):
    """Read-only: the table is rebuilt by ``affinity_refresh`` (hourly, or the button)."""

    list_display = [
        "product",
        "other",
        "orders_both",
        "support_pct",
        "confidence_pct",
        "lift_text",
        "gate",
    ]
    list_select_related = ["product", "other"]
    search_fields = ["product__name", "=product__sku", "other__name", "=other__sku"]
    ordering = ["-lift", "-orders_both"]
    show_full_result_count = False
    actions = ["block_pairs", "approve_pairs"]
    change_list_template = "expansion/affinity_change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        self._policy = CommerceSettings.load()
        self._blocked = set(
            PairReview.objects.filter(blocked=True).values_list("product_id", "other_id")
        )
        extra = {"policy": self._policy, **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.display(description="Support", ordering="support")
    def support_pct(self, obj: ProductAffinity) -> str:
        return f"{obj.support:.2%}"

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_pct(self, obj: ProductAffinity) -> str:
        return f"{obj.confidence:.1%}"

    @admin.display(description="Lift", ordering="lift")
    def lift_text(self, obj: ProductAffinity) -> str:
        return f"{obj.lift:.2f}"

    @admin.display(description="Ethics gate")
    def gate(self, obj: ProductAffinity) -> str:
        reasons = gate_reasons(obj, self._policy, (obj.product_id, obj.other_id) in self._blocked)
        if not reasons:
            return "✓ may recommend"
        return "✗ " + "; ".join(reasons)

    def _review(self, request: HttpRequest, queryset: Any, blocked: bool) -> None:
        for pair in queryset:
            PairReview.objects.update_or_create(
                product_id=pair.product_id,
                other_id=pair.other_id,
                defaults={"blocked": blocked, "reviewed_by": request.user},
            )
        verb = "Blocked" if blocked else "Approved"
        self.message_user(request, f"{verb} {queryset.count()} pair(s).", messages.SUCCESS)

    @admin.action(description="Block: never recommend these pairs", permissions=["view"])
    def block_pairs(self, request: HttpRequest, queryset: Any) -> None:
        self._review(request, queryset, True)

    @admin.action(description="Approve (lift a block)", permissions=["view"])
    def approve_pairs(self, request: HttpRequest, queryset: Any) -> None:
        self._review(request, queryset, False)

    def get_urls(self):
        return [
            path(
                "refresh/",
                self.admin_site.admin_view(self.refresh_view),
                name="expansion_affinity_refresh",
            ),
            *super().get_urls(),
        ]

    def refresh_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or not request.user.has_perm("expansion.view_productaffinity"):
            return HttpResponse(status=405 if request.method != "POST" else 403)
        result = affinity_refresh()
        self.message_user(
            request,
            f"Affinity refreshed: {result.pairs} pairs from {result.orders} orders.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:expansion_productaffinity_changelist"))


@admin.register(PairReview)
class PairReviewAdmin(admin.ModelAdmin):
    list_display = ["product", "other", "blocked", "note", "reviewed_by", "reviewed_at"]
    list_filter = ["blocked"]
    list_select_related = ["product", "other", "reviewed_by"]
    autocomplete_fields = ["product", "other"]
    readonly_fields = ["reviewed_by", "reviewed_at"]

    def save_model(self, request: HttpRequest, obj: PairReview, form: Any, change: bool) -> None:
        obj.reviewed_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


def _total(amounts: Iterable[Decimal]) -> Decimal:
    """A sum of metric amounts, exact at any size they come in (the metrics' precision)."""
    with localcontext(EXACT):
        return sum(amounts, Decimal("0.00"))


def revenue_dashboard_context(*, period: str, today: date) -> dict[str, Any]:
    """Figures and charts for the revenue dashboard: the last 12 periods to ``today``."""
    span = {"day": timedelta(days=29), "week": timedelta(weeks=11), "month": timedelta(days=340)}
    first = period_floor(period, today - span[period])
    rows = revenue_metrics(period=period, first=first, last=today)
    label = {"day": "%d %b", "week": "%d %b", "month": "%b %y"}[period]

    def chart(attr: str) -> dict[str, Any]:
        return bar_chart(
            [(r.period_start.strftime(label), float(getattr(r, attr) or 0)) for r in rows]
        )

    month_start = today.replace(day=1)
    # By month, the last row is the current month already (each pass walks the whole ledger).
    if period == "month":
        current = rows[-1]
    else:
        current = revenue_metrics(period="month", first=month_start, last=today)[0]
    # The whole month, as ``current`` covers it: the MRR rows then sum to its Expansion MRR.
    month_end = (month_start + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    by_type = expansion_by_type(first=month_start, last=month_end)
    return {
        "period": period,
        "periods": PERIODS,
        "rows": rows,
        "current": current,
        "month": month_start,
        "charts": [
            ("Revenue", chart("revenue")),
            ("Orders", chart("orders")),
            ("MRR at the end of the period", chart("mrr_end")),
            ("Expansion MRR", chart("mrr_expansion")),
            ("Expansion revenue (one-time)", chart("expansion_revenue")),
            ("Churned MRR", chart("mrr_churn")),
        ],
        "by_type": by_type,
        "by_type_mrr": _total(row.amount for row in by_type if row.recurring),
        "by_type_one_time": _total(row.amount for row in by_type if not row.recurring),
        "by_type_chart": bar_chart(
            [
                (f"{row.kind} ({'MRR' if row.recurring else 'one-time'})", float(row.amount))
                for row in by_type
            ]
        ),
        "opportunities": top_opportunities(),
    }


def revenue_view(request: HttpRequest) -> HttpResponse:
    """The revenue dashboard (/admin/expansion/order/revenue/)."""
    if not request.user.has_perm("expansion.view_order"):
        return HttpResponse(status=403)
    period = request.GET.get("period", "month")
    if period not in PERIODS:
        period = "month"
    context = {
        **admin.site.each_context(request),
        **revenue_dashboard_context(period=period, today=timezone.now().date()),
        "title": "Revenue and expansion",
    }
    return TemplateResponse(request, "expansion/revenue_dashboard.html", context)
