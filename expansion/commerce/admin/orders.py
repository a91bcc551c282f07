"""Orders (with their total) and subscriptions (with their MRR ledger, read-only); the
revenue dashboard's URL hangs off the orders' admin."""

from django.contrib import admin
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.http import HttpRequest
from django.urls import path

from expansion.commerce.models import Order, OrderLine, Subscription, SubscriptionChange
from expansion.core.admin_lists import LatestRowsInline, admin_inline_add
from learners.models import Learner

from .dashboard import revenue_view


def order_total() -> Sum:
    """An order's total before refunds: the sum of its lines."""
    amount = ExpressionWrapper(
        F("lines__unit_price") * F("lines__quantity"),
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )
    return Sum(amount)


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
        return super().get_queryset(request).annotate(total_amount=order_total())

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


class LearnerOrderInline(LatestRowsInline):
    """On the learner's page: their 20 latest orders with the total."""

    model = Order
    fields = ("external_id", "placed_at", "order_total", "currency")
    latest_order = "-placed_at"
    verbose_name_plural = "Orders (the 20 latest)"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(total_amount=order_total())

    @admin.display(description="Total")
    def order_total(self, obj: Order):
        return obj.total_amount  # type: ignore[attr-defined]


class LearnerSubscriptionInline(LatestRowsInline):
    """On the learner's page: their subscriptions (an account's are on the account)."""

    model = Subscription
    fields = ("external_id", "plan", "mrr", "status", "started_at", "renews_at")
    latest_order = "-started_at"
    related = ("plan",)
    verbose_name_plural = "Subscriptions (the 20 latest)"


admin_inline_add(Learner, LearnerOrderInline)
admin_inline_add(Learner, LearnerSubscriptionInline)
