from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from expansion.core.charts import Series, interval_chart, line_chart
from expansion.core.db.router import replica_reads
from expansion.core.singleton import SingletonAdmin

from .analysis import cumulative_lift, experiment_results, global_holdout_results
from .assignment import phase_record
from .cards import (
    CardError,
    card_missing,
    card_sample_size,
    decision_blockers,
    experiment_decide,
    experiment_start,
)
from .design import decision_comparisons, is_sequential
from .models import Arm, Decision, Experiment, ExperimentSettings, Guardrail, Status


class ArmInline(admin.TabularInline):
    model = Arm
    extra = 0
    fields = ["name", "is_control", "weight", "offer", "is_active"]
    autocomplete_fields = ["offer"]


class ExperimentForm(forms.ModelForm):
    guardrails = forms.MultipleChoiceField(
        choices=Guardrail.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = Experiment
        fields = "__all__"


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Seed 001's Expansion Experiment Card: written in draft, started when complete, decided
    on the results page with who decided what and why."""

    form = ExperimentForm
    list_display = ["name", "status", "primary_metric", "started_at", "decision", "results"]
    list_filter = ["status", "primary_metric", "decision"]
    search_fields = ["name", "hypothesis"]
    inlines = [ArmInline]
    autocomplete_fields = ["target_product"]
    readonly_fields = [
        "status",
        "started_at",
        "ended_at",
        "calculated_sample_size",
        "testing_in_force",
        "still_missing",
        "decision",
        "winning_arm",
        "decision_reason",
        "decided_by",
        "decided_at",
        "override_reason",
        "override_missing",
        "overridden_by",
        "overridden_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "status", "still_missing"]}),
        (
            "The test",
            {
                "fields": [
                    "hypothesis",
                    "variable",
                    "primary_metric",
                    "target_product",
                    "guardrails",
                    "holdout_definition",
                    "holdout_percent",
                    "window_days",
                ]
            },
        ),
        (
            "Sample size (statsmodels: two proportions, two-sided, Bonferroni-corrected)",
            {
                "fields": [
                    "baseline_rate",
                    "minimum_detectable_effect",
                    "alpha",
                    "power",
                    "calculated_sample_size",
                    "sample_size_per_arm",
                    "min_duration_days",
                ]
            },
        ),
        (
            "Testing (fixed horizon or sequential)",
            {"fields": ["testing", "sequential_tuning", "testing_in_force"]},
        ),
        ("Decision rule", {"fields": ["decision_rule", "sign_off_by"]}),
        (
            "Result",
            {
                "fields": [
                    "started_at",
                    "ended_at",
                    "result",
                    "decision",
                    "winning_arm",
                    "decision_reason",
                    "decided_by",
                    "decided_at",
                    "override_reason",
                    "override_missing",
                    "overridden_by",
                    "overridden_at",
                ]
            },
        ),
    ]

    @admin.display(description="Calculated per arm")
    def calculated_sample_size(self, obj: Experiment) -> str:
        try:
            n = card_sample_size(obj)
        except ValueError as exc:
            return str(exc)
        comparisons = decision_comparisons(obj).text
        if n is None:
            return f"Give a baseline rate and a minimum detectable effect. Planned: {comparisons}."
        return (
            f"{n:,} learners per arm for {comparisons} — the correction the results use "
            "(left empty below, this is what is saved)"
        )

    @admin.display(description="In force")
    def testing_in_force(self, obj: Experiment) -> str:
        if is_sequential(obj):
            return (
                "Sequential: always-valid p-values and confidence sequences (GrowthBook's "
                f"normal mixture, tightest at {obj.sequential_tuning:,} learners per "
                "comparison); the results may be read at any time."
            )
        return (
            "Fixed horizon: the results are valid once, when the planned sample per arm has "
            "been assigned and its conversion windows have closed; not to be acted on before."
        )

    @admin.display(description="Before it can start")
    def still_missing(self, obj: Experiment) -> str:
        if obj.status != Status.DRAFT:
            return "—"
        missing = card_missing(obj)
        return "; ".join(missing) if missing else "Complete: use Start on the results page."

    @admin.display(description="Results")
    def results(self, obj: Experiment) -> str:
        url = reverse("admin:experiments_experiment_results", args=[obj.pk])
        return format_html('<a href="{}">Results</a>', url)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        card = form.instance
        if card.status == Status.RUNNING:
            # Weights, retired arms or the holdout may have changed: a new plan, a new phase.
            phase_record(experiment=card)
        if not card.sample_size_per_arm:
            try:
                n = card_sample_size(card)
            except ValueError:
                n = None
            if n:
                Experiment.objects.filter(pk=card.pk).update(sample_size_per_arm=n)

    def get_urls(self):
        return [
            path(
                "<int:pk>/results/",
                self.admin_site.admin_view(self.results_view),
                name="experiments_experiment_results",
            ),
            *super().get_urls(),
        ]

    def results_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_view_permission(request, experiment):
            return HttpResponse(status=403)
        if request.method == "POST":
            if not self.has_change_permission(request, experiment):
                return HttpResponse(status=403)
            try:
                if request.POST.get("action") == "start":
                    experiment_start(experiment=experiment)
                    messages.success(request, "Started: learners are assigned from now on.")
                else:
                    arm_id = request.POST.get("winning_arm") or None
                    experiment_decide(
                        experiment=experiment,
                        decision=request.POST.get("decision", ""),
                        winning_arm=experiment.arms.filter(pk=arm_id).first() if arm_id else None,
                        reason=request.POST.get("reason", ""),
                        result=request.POST.get("result", ""),
                        override_reason=request.POST.get("override_reason", ""),
                        user=request.user,
                    )
                    messages.success(request, "Decision recorded.")
            except CardError as exc:
                messages.error(request, str(exc))
            return HttpResponseRedirect(request.path)
        # Results tolerate replication lag: read from the replica when there is one.
        with replica_reads():
            results = experiment_results(experiment=experiment)
            context = {
                **self.admin_site.each_context(request),
                "opts": Experiment._meta,
                "experiment": experiment,
                "results": results,
                "chart": rate_chart(results["arms"]),
                "lift_chart": lift_chart(
                    cumulative_lift(experiment=experiment),
                    results["arms"],
                    horizon=results["horizon"],
                ),
                "decisions": Decision.choices,
                "arms": experiment.arms.all(),
                "missing": card_missing(experiment) if experiment.status == Status.DRAFT else [],
                "blockers": (
                    decision_blockers(experiment=experiment)
                    if experiment.status == Status.RUNNING
                    else []
                ),
                "title": f"Results: {experiment.name}",
            }
            return TemplateResponse(request, "experiments/results.html", context).render()


def rate_chart(arms: list[dict]) -> dict:
    """Each arm's conversion rate with its Wilson interval, on one shared percentage axis."""
    return interval_chart(
        [
            (arm["name"], arm["rate"], *(arm["rate_ci"] or (None, None)))
            for arm in arms
            if arm["rate"] is not None
        ],
        kind="percent",
    )


def lift_chart(days: list[dict], arms: list[dict], horizon: dict | None = None) -> dict:
    """Cumulative lift over the control by day of assignment, one line per arm with its
    interval as a band (always valid on a sequential card; on a fixed-horizon card the day's
    ordinary interval, for watching) and, on a fixed-horizon card, a mark on the day the
    planned sample was assigned (its windows close later)."""
    names = {a["key"]: a["name"] for a in arms}
    keys = sorted({k for d in days for k in d.get("lift", {})})
    if not days or not keys:
        return {"empty": True}
    series = [
        Series(
            name=names.get(key, key),
            values=[d.get("lift", {}).get(key) for d in days],
            low=[(d.get("interval", {}).get(key) or (None, None))[0] for d in days],
            high=[(d.get("interval", {}).get(key) or (None, None))[1] for d in days],
        )
        for key in keys
    ]
    marker = None
    assigned = [g["planned_assigned_at"] for g in (horizon or {}).get("groups", [])]
    if horizon and not horizon.get("sequential") and assigned and None not in assigned:
        day = max(assigned).date()
        marker = next((i for i, d in enumerate(days) if d["day"] >= day), len(days) - 1)
    chart = line_chart(
        [d["day"].strftime("%d %b") for d in days],
        series,
        kind="percent",
        title="Lift over the control (percentage points)",
        reference=0.0,
        marker=marker,
        marker_label="planned sample" if marker is not None else "",
    )
    chart["marker_day"] = days[marker]["day"] if marker is not None else None
    return chart


@admin.register(ExperimentSettings)
class ExperimentSettingsAdmin(SingletonAdmin):
    fields = ["global_holdout_percent", "comparison_window_days", "comparison"]
    readonly_fields = ["comparison"]

    @admin.display(description="Global holdout against everyone else")
    def comparison(self, obj: ExperimentSettings) -> str:
        if obj.pk is None:
            return "—"
        r = global_holdout_results()
        h, e, lift = r["holdout"], r["everyone_else"], r["lift"]

        def pct(v):
            return "—" if v is None else f"{v:.2%}"

        def money(v):
            return "—" if v is None else f"{v:,.2f}"

        return format_html(
            "Last {} days. Holdout: {} learners, {} bought ({}), revenue per learner {}. "
            "Everyone else: {} learners, {} bought ({}), revenue per learner {}. "
            "Difference in buyers: {} (p = {}); revenue per learner: {} (Welch p = {}).",
            r["window_days"],
            h["n"],
            h["buyers"],
            pct(h["rate"]),
            money(h["revenue_per_learner"]),
            e["n"],
            e["buyers"],
            pct(e["rate"]),
            money(e["revenue_per_learner"]),
            pct(lift["absolute_lift"]),
            "—" if lift["p_value"] is None else f"{lift['p_value']:.4f}",
            money(lift["revenue_difference"]),
            "—" if lift["revenue_p_value"] is None else f"{lift['revenue_p_value']:.4f}",
        )
