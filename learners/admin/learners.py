"""Admin for what the platform syncs: accounts, courses, enrollments, events and learners
(the learner page gathers their scores, segments and consent)."""

from django.contrib import admin

from expansion.core.admin_lists import BigTableAdmin, IndexedValuesFilter, fixed_values_filter

from ..models import Account, Course, Enrollment, Event, EventKind, Learner, Module
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


class RecentEventInline(admin.TabularInline):
    """The learner's 20 latest events, read-only (the full list is under Events)."""

    model = Event
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("occurred_at", "kind", "value", "course", "properties")
    readonly_fields = fields
    ordering = ["-occurred_at"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("course")
        match = request.resolver_match
        learner_id = match.kwargs.get("object_id") if match else None
        if learner_id is None:
            return qs.none()
        latest = qs.filter(learner_id=learner_id).order_by("-occurred_at")[:20]
        return qs.filter(id__in=list(latest.values_list("id", flat=True)))


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


@admin.register(Learner)
class LearnerAdmin(BigTableAdmin):
    list_display = [
        "external_id",
        "name",
        "email",
        "account",
        "time_zone",
        "marketing_opt_in",
        "unsubscribed_at",
        "created_at",
    ]
    list_filter = [
        "marketing_opt_in",
        ("unsubscribed_at", admin.EmptyFieldListFilter),
        ("locale", IndexedValuesFilter),
    ]
    # The whole external id, the whole email or the whole name (any case): each on its own
    # index (indexed_search); "contains" scanned every learner.
    search_fields = ["=external_id", "=email", "=name"]
    search_by = {"exact": ("external_id",), "iexact": ("email", "name")}
    list_select_related = ["account"]
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

    @admin.display(description="Why this learner scores what they score")
    def scores(self, obj: Learner) -> str:
        return score_card(obj) if obj.pk else "—"
