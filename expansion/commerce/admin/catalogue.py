"""The catalogue's admin: products (with their gross margin) and offers (their incentive
held to the commerce settings' discount ceiling)."""

from typing import Any

from django import forms
from django.contrib import admin

from expansion.commerce.models import CommerceSettings, Moment, Offer, Product
from expansion.commerce.pricing import offer_check


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
