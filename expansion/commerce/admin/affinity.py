"""Product affinity (read-only, with the ethics gate's verdict per pair and a refresh
button) and the marketers' pair reviews (block or approve a pair)."""

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from expansion.commerce.affinity import affinity_refresh, gate_reasons
from expansion.commerce.models import CommerceSettings, PairReview, ProductAffinity


@admin.register(ProductAffinity)
class ProductAffinityAdmin(admin.ModelAdmin):
    """Read-only: the table is rebuilt by ``affinity_refresh`` (hourly, or the button)."""

    # Ranked by lift: the lift and the gate's verdict come right after the pair, so that a
    # laptop-wide window shows them without scrolling sideways (at 1,400 px both were past
    # the right edge).
    list_display = [
        "product",
        "other",
        "lift_text",
        "gate",
        "orders_both",
        "support_pct",
        "confidence_pct",
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
