"""Admin for scores: the score card, the scores list and dashboard, the versioned scoring
model, the RFM map and the record of passes."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, F, IntegerField
from django.db.models.functions import Cast, Least
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join

from expansion.core.charts import bar_chart

from ..models import (
    DirtyLearner,
    EnrollmentScore,
    Learner,
    LearnerScore,
    RfmSegment,
    ScoreHistory,
    ScoringModel,
    ScoringRun,
    Segment,
)
from ..scoring import scoring_model_active, scoring_model_new_version
from ..tasks import score_all_from_scratch


class ScoreHistoryInline(admin.TabularInline):
    model = ScoreHistory
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("day", "lps", "band", "stage")
    readonly_fields = fields
    verbose_name_plural = "Score history (the 30 latest days it changed)"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        match = request.resolver_match
        learner_id = match.kwargs.get("object_id") if match else None
        if learner_id is None:
            return qs.none()
        days = qs.filter(learner_id=learner_id).order_by("-day").values_list("id", flat=True)
        return qs.filter(id__in=list(days[:30]))


def score_card(learner: Learner) -> str:
    """The learner's scores explained, for the admin page."""
    score = LearnerScore.objects.filter(learner=learner).first()
    if score is None:
        return "Not scored yet (a pass runs every 20 seconds after new events)."
    model = ScoringModel.objects.filter(version=score.model_version).first()
    weights = model.weights if model else {}
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}%</td><td>× {}</td><td>= {} pts</td>"
        '<td><div style="background:#417690;height:8px;width:{}px"></div></td></tr>',
        (
            (
                name,
                round(value * 100),
                weights.get(name, "?"),
                round(value * weights.get(name, 0), 1),
                round(value * 120),
            )
            for name, value in score.components().items()
        ),
    )
    rfm = f"{score.rfm_cell} — {score.rfm_segment}" if score.rfm_cell else "no orders (no RFM cell)"
    return format_html(
        "<p><strong>LPS {}</strong> · {} band · stage {} · flags: {} · RFM {} · "
        "model v{} · computed {}</p><table>{}</table>",
        round(score.lps, 1),
        score.get_band_display(),
        score.get_stage_display(),
        ", ".join(score.flags) or "none",
        rfm,
        score.model_version,
        score.computed_at,
        rows,
    )


@admin.register(LearnerScore)
class LearnerScoreAdmin(admin.ModelAdmin):
    change_list_template = "learners/learnerscore_change_list.html"
    list_display = [
        "learner",
        "lps",
        "band",
        "stage",
        "rfm_cell",
        "rfm_segment",
        "flag_list",
        "computed_at",
    ]
    list_filter = [
        "band",
        "stage",
        "rfm_segment",
        "flag_stall",
        "flag_open_ticket",
        "flag_payment_failed",
        "flag_offer_declined",
        "flag_refund",
    ]
    search_fields = ["=learner__external_id", "learner__email"]
    list_select_related = ["learner"]
    show_full_result_count = False
    ordering = ["-lps"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Flags")
    def flag_list(self, obj: LearnerScore) -> str:
        return ", ".join(obj.flags) or "—"

    def get_urls(self):
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="learners_score_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return TemplateResponse(
            request,
            "learners/score_dashboard.html",
            {**self.admin_site.each_context(request), **score_dashboard_context()},
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": "Learner scores (see the dashboard for charts)",
        }
        return super().changelist_view(request, extra_context)


def score_dashboard_context() -> dict:
    """Score distribution per course and segment sizes over time: two aggregate queries."""
    bucket = Least(Cast(F("lps") / 10, IntegerField()), 9)
    rows = (
        EnrollmentScore.objects.values("course_id", "course__title")
        .annotate(bucket=bucket)
        .values("course_id", "course__title", "bucket")
        .annotate(n=Count("pk"))
        .order_by("course__title", "bucket")
    )
    courses: dict[int, dict] = {}
    for row in rows:
        course = courses.setdefault(
            row["course_id"],
            {"title": row["course__title"], "buckets": [0] * 10},
        )
        course["buckets"][row["bucket"]] += row["n"]
    for course in courses.values():
        b = course["buckets"]
        course.update(
            total=sum(b),
            high=sum(b[7:]),
            mid=sum(b[4:7]),
            low=sum(b[:4]),
            chart=bar_chart(
                [(f"{10 * i}–{10 * i + 9}", n) for i, n in enumerate(b)],
                title="Enrollments by LPS",
            ),
        )
    segments = []
    for segment in Segment.objects.filter(is_active=True).prefetch_related("snapshots"):
        history = [(s.day.strftime("%m-%d"), s.size) for s in segment.snapshots.all()][-30:]
        segments.append(
            {
                "pk": segment.pk,
                "name": segment.name,
                "size": segment.size,
                "chart": bar_chart(history, title="Members by day"),
            }
        )
    last_full = ScoringRun.objects.filter(kind="full").first()
    return {
        "title": "Scores and segments",
        "courses": list(courses.values()),
        "segments": segments,
        "model": scoring_model_active(),
        "last_full": last_full,
        "scored": LearnerScore.objects.count(),
        "dirty": DirtyLearner.objects.count(),
    }


class ScoringModelForm(forms.ModelForm):
    class Meta:
        model = ScoringModel
        exclude = ["created_by"]


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    """Saving an edited model stores it as the next version and activates it."""

    form = ScoringModelForm
    list_display = [
        "__str__",
        "note",
        "weights_summary",
        "band_high",
        "band_mid",
        "created_by",
        "created_at",
    ]
    readonly_fields = ["version", "is_active", "created_by", "created_at"]
    fieldsets = [
        (None, {"fields": ["version", "is_active", "note", "created_by", "created_at"]}),
        (
            "LPS weights (must add up to 100)",
            {
                "fields": [
                    "weight_completion",
                    "weight_assessment",
                    "weight_community",
                    "weight_downloads",
                    "weight_login",
                ]
            },
        ),
        (
            "Normalisation",
            {
                "fields": [
                    "activity_window_days",
                    "community_cap",
                    "downloads_cap",
                    "login_cap",
                    "login_recent_days",
                    "login_lapsed_days",
                ]
            },
        ),
        ("Bands", {"fields": ["band_high", "band_mid"]}),
        (
            "Lifecycle stages",
            {
                "fields": [
                    "onboarding_days",
                    "growth_days",
                    "renewal_window_days",
                    "decline_ratio",
                    "decline_min_prior_events",
                ]
            },
        ),
        (
            "Risk flags",
            {
                "fields": [
                    "stall_logins_per_week",
                    "stall_active_weeks",
                    "stall_silent_days",
                    "payment_failed_days",
                    "offer_declined_days",
                    "refund_days",
                ]
            },
        ),
    ]

    @admin.display(description="Weights C/A/Co/D/L")
    def weights_summary(self, obj: ScoringModel) -> str:
        return "/".join(str(v) for v in obj.weights.values())

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        base = ScoringModel.objects.filter(pk=obj.pk).first() if change else scoring_model_active()
        changes = {name: form.cleaned_data[name] for name in form.cleaned_data}
        new = scoring_model_new_version(base=base or obj, changes=changes, user=request.user)
        obj.pk, obj.version = new.pk, new.version
        self.message_user(
            request,
            f"Saved as version {new.version} and activated; the next full pass (hourly, or "
            "the 'score everyone now' action) rescoring everyone with it.",
            messages.SUCCESS,
        )

    actions = ["score_everyone_now"]

    @admin.action(description="Score everyone now with the active model (queued)")
    def score_everyone_now(self, request, queryset) -> None:
        transaction.on_commit(score_all_from_scratch.delay)
        self.message_user(request, "A scoring pass from scratch is queued.", messages.SUCCESS)


@admin.register(RfmSegment)
class RfmSegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "cells", "priority", "do_not_pitch", "move"]
    list_editable = ["priority", "do_not_pitch"]
    ordering = ["priority"]


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "kind",
        "model_version",
        "learners",
        "changed",
        "duration",
        "as_of",
    ]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in ScoringRun._meta.fields]

    @admin.display(description="Seconds")
    def duration(self, obj: ScoringRun):
        return (
            round((obj.finished_at - obj.started_at).total_seconds(), 2)
            if obj.finished_at
            else None
        )

    def has_add_permission(self, request) -> bool:
        return False
