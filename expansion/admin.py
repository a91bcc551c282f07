from django import forms
from django.contrib import admin, messages
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.http import HttpRequest

from .apikeys import api_key_issue, api_key_revoke
from .models import ApiKey, ApiScope, Order, OrderLine, Product, Subscription

admin.site.site_header = "Expansion"
admin.site.site_title = "Expansion"
admin.site.index_title = "Offers, learners and revenue"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "sku", "kind", "price", "currency", "unit_cost", "margin", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "=sku"]
    list_select_related = ["course"]
    autocomplete_fields = ["course"]

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

    def get_queryset(self, request: HttpRequest):
        amount = ExpressionWrapper(
            F("lines__unit_price") * F("lines__quantity"),
            output_field=DecimalField(max_digits=14, decimal_places=2),
        )
        return super().get_queryset(request).annotate(total_amount=Sum(amount))

    @admin.display(description="Total", ordering="total_amount")
    def total(self, obj: Order):
        return obj.total_amount  # type: ignore[attr-defined]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
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
