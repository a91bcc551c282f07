"""Admin for what the platform syncs: accounts, courses, enrollments, events and learners
(the learner page gathers their scores, segments and consent)."""

from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet

from expansion.core.admin_lists import (
    BigTableAdmin,
    IndexedValuesFilter,
    LatestRowsInline,
    fixed_values_filter,
)

from ..models import (
    Account,
    Course,
    Enrollment,
    Event,
    EventKind,
    Learner,
    Module,
    RfmSegment,
    Segment,
    SegmentMembership,
)
from ..models.querysets import reachable_q
from .consent import CategoryOptOutInline, ConsentChangeInline
from .scores import ScoreHistoryInline, score_card
from .segments import MembershipInline


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "created_at"]
    search_fields = ["external_id", "name"]


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    extra = 0
    fields = ["course", "enrolled_at", "completed_at", "progress"]
    raw_id_fields = ["course"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("course")


class RecentEventInline(LatestRowsInline):
    """The learner's 20 latest events, read-only (the full list is under Events)."""

    model = Event
    show_change_link = False
    fields = ("occurred_at", "kind", "value", "course", "properties")
    latest_order = "-occurred_at"
    related = ("course",)
    verbose_name_plural = "Events (the 20 latest)"


class ModuleInline(admin.TabularInline):
    model = Module
    extra = 0
    fields = ["position", "external_id", "title", "is_final"]


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ["title", "external_id", "creator", "learning_path", "path_position"]
    list_filter = ["learning_path"]
    search_fields = ["title", "=external_id"]
    list_select_related = ["creator"]
    autocomplete_fields = ["creator"]
    inlines = [ModuleInline]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["learner", "course", "enrolled_at", "completed_at", "progress"]
    list_filter = ["course", ("completed_at", admin.EmptyFieldListFilter)]
    search_fields = ["=learner__external_id", "learner__email", "course__title"]
    list_select_related = ["learner", "course"]
    raw_id_fields = ["learner"]
    autocomplete_fields = ["course"]
    show_full_result_count = False
    date_hierarchy = "enrolled_at"


@admin.register(Event)
class EventAdmin(BigTableAdmin):
    list_display = ["occurred_at", "kind", "learner", "course", "value", "received_at"]
    # The platform's kinds, without a DISTINCT over every event (custom kinds by URL).
    list_filter = [("kind", fixed_values_filter(EventKind.values)), "course"]
    # A learner's external id or an event's idempotency key, whole (indexed_search).
    search_fields = ["=learner__external_id", "=idempotency_key"]
    search_by = {"exact": ("idempotency_key",), "related": {"learner": (Learner, "external_id")}}
    list_select_related = ["learner", "course"]
    raw_id_fields = ["learner", "course", "module"]
    date_hierarchy = "occurred_at"
    readonly_fields = ["received_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Events are the platform's record of what happened: append-only.
        return False


class RfmSegmentFilter(admin.SimpleListFilter):
    """The learner's RFM segment, from the named segments (no DISTINCT over the scores)."""

    title = "RFM segment"
    parameter_name = "rfm_segment"

    def lookups(self, request, model_admin):
        names = RfmSegment.objects.order_by("priority", "name").values_list("name", flat=True)
        return [(name, name) for name in names]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(score__rfm_segment=value) if value else queryset


class SegmentFilter(admin.SimpleListFilter):
    """Members now of one of the marketer's segments."""

    title = "segment"
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in Segment.objects.values_list("pk", "name")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        current = SegmentMembership.objects.filter(
            segment_id=int(value), learner=OuterRef("pk"), exited_at__isnull=True
        )
        return queryset.filter(Exists(current))


class FlagFilter(admin.SimpleListFilter):
    """The score's flags: any learner the guardrails would hold back, by why."""

    title = "flag"
    parameter_name = "flag"
    FLAGS = {
        "stall": "Stalled",
        "open_ticket": "Open support ticket",
        "payment_failed": "Payment failed",
        "offer_declined": "Declined an offer",
        "refund": "Refunded",
    }

    def lookups(self, request, model_admin):
        return list(self.FLAGS.items())

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in self.FLAGS:
            return queryset.filter(**{f"score__flag_{value}": True})
        return queryset


class ReachableFilter(admin.SimpleListFilter):
    """Who a marketing email may reach: an address not suppressed, opted in, not
    unsubscribed (``reachable_q``)."""

    title = "reachable by marketing email"
    parameter_name = "reachable"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(reachable_q())
        if self.value() == "no":
            return queryset.exclude(reachable_q())
        return queryset


@admin.register(Learner)
class LearnerAdmin(BigTableAdmin):
    list_display = [
        "external_id",
        "name",
        "email",
        "lps",
        "band",
        "stage",
        "rfm_segment",
        "account",
        "marketing_opt_in",
        "created_at",
    ]
    list_filter = [
        ("score__band", admin.ChoicesFieldListFilter),
        ("score__stage", admin.ChoicesFieldListFilter),
        RfmSegmentFilter,
        SegmentFilter,
        FlagFilter,
        ReachableFilter,
        "marketing_opt_in",
        ("unsubscribed_at", admin.EmptyFieldListFilter),
        ("locale", IndexedValuesFilter),
    ]
    # The whole external id, the whole email or the whole name (any case): each on its own
    # index (indexed_search); "contains" scanned every learner.
    search_fields = ["=external_id", "=email", "=name"]
    search_by = {"exact": ("external_id",), "iexact": ("email", "name")}
    list_select_related = ["account", "score"]
    autocomplete_fields = ["account"]
    readonly_fields = ["scores", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [
        EnrollmentInline,
        RecentEventInline,
        ScoreHistoryInline,
        MembershipInline,
        CategoryOptOutInline,
        ConsentChangeInline,
    ]
    fieldsets = [
        ("Scores", {"fields": ["scores"]}),
        (None, {"fields": ["external_id", "name", "email", "account"]}),
        ("Locale", {"fields": ["time_zone", "locale"]}),
        ("Consent", {"fields": ["marketing_opt_in", "unsubscribed_at"]}),
        ("Data", {"fields": ["attributes", "created_at", "updated_at"]}),
    ]

    @admin.display(description="LPS", ordering="score__lps")
    def lps(self, obj: Learner) -> str:
        score = getattr(obj, "score", None)
        return f"{score.lps:.0f}" if score is not None else "—"

    @admin.display(description="Band", ordering="score__band")
    def band(self, obj: Learner) -> str:
        score = getattr(obj, "score", None)
        # The short name: the full label ("High (expansion-ready)") is in the filter.
        return score.band.capitalize() if score is not None else "—"

    @admin.display(description="Stage", ordering="score__stage")
    def stage(self, obj: Learner) -> str:
        score = getattr(obj, "score", None)
        return score.get_stage_display() if score is not None else "—"

    @admin.display(description="RFM segment")
    def rfm_segment(self, obj: Learner) -> str:
        score = getattr(obj, "score", None)
        return (score.rfm_segment or "—") if score is not None else "—"

    @admin.display(description="Why this learner scores what they score")
    def scores(self, obj: Learner) -> str:
        return score_card(obj) if obj.pk else "—"
