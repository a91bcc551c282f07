"""Experiments: seed 001's Expansion Experiment Card, its arms, and sticky assignment.

A card is written in draft (hypothesis, the single variable, primary and guardrail metrics,
holdout, sample size, decision rule and who signs off), started when complete, and decided with
a recorded result. Learners are assigned deterministically: a hash of the experiment's salt and
the learner id picks one of 10,000 buckets, the first ``holdout_percent`` of which are the
experiment's holdout, the rest split between arms by weight. A global holdout (by a separate
salt) is never reached by any marketing campaign.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from expansion.core.singleton import SingletonModel
from learners.models import Learner

BUCKETS = 10_000


def new_salt() -> str:
    return secrets.token_hex(8)


class ExperimentSettings(SingletonModel):
    """One row: the global holdout every marketing campaign leaves alone."""

    global_holdout_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=5,
        validators=[MinValueValidator(0), MaxValueValidator(50)],
        help_text="Share of all learners no marketing campaign reaches, to measure the "
        "program's total incremental revenue.",
    )
    global_holdout_salt = models.CharField(max_length=32, default=new_salt)
    comparison_window_days = models.PositiveIntegerField(
        default=30, help_text="Window for the global holdout's comparison with everyone else."
    )

    class Meta:
        verbose_name = "experiment settings"
        verbose_name_plural = "experiment settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="experimentsettings_one")]

    def __str__(self) -> str:
        return "Experiment settings"


class Metric(models.TextChoices):
    CONVERSION = "conversion", "Conversion (an order of the target product, else any order)"
    REVENUE = "revenue", "Revenue per assigned learner"


class Guardrail(models.TextChoices):
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe rate"
    REFUND = "refund", "Refund rate"
    COMPLAINT = "complaint", "Complaint rate"


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    DECIDED = "decided", "Decided"


class Testing(models.TextChoices):
    AUTO = "auto", "Automatic: sequential unless a sample size fixes the horizon"
    SEQUENTIAL = "sequential", "Sequential: always-valid, look as often as you like"
    FIXED = "fixed", "Fixed horizon: decide once, at the planned sample size"


class Decision(models.TextChoices):
    ROLL_OUT = "roll_out", "Roll out the winning arm"
    KEEP_CONTROL = "keep_control", "Keep control (retire the variants)"
    INCONCLUSIVE = "inconclusive", "Inconclusive (stop, no change)"


class Experiment(models.Model):
    """The Expansion Experiment Card (seed 001)."""

    name = models.CharField(max_length=150, unique=True)
    hypothesis = models.TextField(
        blank=True,
        help_text="This offer, to this segment, at this moment, will … (and why).",
    )
    variable = models.CharField(
        max_length=255, blank=True, help_text="The single variable being changed."
    )
    primary_metric = models.CharField(max_length=20, choices=Metric.choices, blank=True)
    target_product = models.ForeignKey(
        "expansion.Product",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Conversion = an order of this product; empty: any order (expansion revenue).",
    )
    guardrails = models.JSONField(
        default=list, blank=True, help_text="Guardrail metrics, tested like the primary one."
    )
    holdout_definition = models.TextField(
        blank=True, help_text="Who is held out and why (e.g. 10% of the segment, no offer)."
    )
    holdout_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=10,
        validators=[MinValueValidator(0), MaxValueValidator(90)],
        help_text="Share of assigned learners who get nothing (the control for incrementality).",
    )
    baseline_rate = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Expected control conversion rate (0–1), for the sample size.",
    )
    minimum_detectable_effect = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Smallest absolute lift worth detecting (0.02 = 2 points).",
    )
    alpha = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=0.05,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.2)],
    )
    power = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=0.8,
        validators=[MinValueValidator(0.5), MaxValueValidator(0.99)],
    )
    sample_size_per_arm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Required learners per arm before deciding."
    )
    testing = models.CharField(
        max_length=12,
        choices=Testing.choices,
        default=Testing.AUTO,
        help_text="Sequential testing (always-valid p-values and confidence sequences, "
        "GrowthBook's formula) stays valid however often the results are looked at; a fixed "
        "horizon is valid once, at the planned sample.",
    )
    sequential_tuning = models.PositiveIntegerField(
        default=5000,
        validators=[MinValueValidator(10)],
        help_text="Sequential tuning: the learners in a comparison (both groups together) at "
        "which the confidence sequence is tightest, e.g. the sample you expect.",
    )
    min_duration_days = models.PositiveIntegerField(
        default=14, help_text="Run at least this long (whole weeks avoid day-of-week bias)."
    )
    window_days = models.PositiveIntegerField(
        default=14, help_text="A conversion counts within this many days of assignment."
    )
    decision_rule = models.TextField(
        blank=True,
        help_text="Decided in advance: e.g. roll out if revenue per learner beats control at "
        "p < 0.05 with no guardrail worse at p < 0.05.",
    )
    sign_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who signs the decision off.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    salt = models.CharField(max_length=32, default=new_salt, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True, help_text="What happened (filled after the test).")
    decision = models.CharField(max_length=20, choices=Decision.choices, blank=True)
    winning_arm = models.ForeignKey(
        "Arm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.TextField(
        blank=True, help_text="Why the decision was taken before the card allowed it."
    )
    override_missing = models.TextField(
        blank=True, help_text="What the card still required when the decision was overridden."
    )
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    overridden_at = models.DateTimeField(null=True, blank=True)
    last_results = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="The scheduled analysis's latest figures (the results page computes live).",
    )
    analysed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A running or decided card has what it needs to be a test at all.
            models.CheckConstraint(
                condition=Q(status="draft")
                | (
                    ~Q(hypothesis="")
                    & ~Q(primary_metric="")
                    # A fixed horizon needs its sample size; a sequential test does not.
                    & (Q(sample_size_per_arm__isnull=False) | ~Q(testing="fixed"))
                ),
                name="experiment_startable",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Arm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=100)
    is_control = models.BooleanField(
        default=False, help_text="The arm the others are compared with (e.g. the current offer)."
    )
    weight = models.PositiveIntegerField(default=1, help_text="Relative share of assignments.")
    offer = models.ForeignKey(
        "expansion.Offer", null=True, blank=True, on_delete=models.PROTECT, related_name="arms"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["experiment", "-is_control", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="arm_unique_name"),
            models.UniqueConstraint(
                fields=["experiment"], condition=Q(is_control=True), name="arm_one_control"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment}: {self.name}"


class Phase(models.Model):
    """The plan in force over a stretch of a running experiment: the holdout share and each
    active arm's weight. A new phase starts whenever the plan changes (an arm reweighted,
    retired or added, the holdout changed), so the split is checked against the plan each
    learner was actually assigned under. An assignment belongs to the last phase started at
    or before its ``assigned_at`` (the first phase also takes any earlier ones)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="phases")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    holdout_percent = models.DecimalField(max_digits=5, decimal_places=2)
    weights = models.JSONField(help_text="Active arm id (as text) → weight.")

    class Meta:
        ordering = ["experiment", "number"]
        constraints = [
            # Also the index the analysis's phase lookup (experiment, started_at ≤ …) uses.
            models.UniqueConstraint(fields=["experiment", "number"], name="phase_unique_number"),
            models.UniqueConstraint(
                fields=["experiment"], condition=Q(ended_at__isnull=True), name="phase_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment}: phase {self.number}"


class Assignment(models.Model):
    """A learner's place in an experiment, fixed at first assignment (sticky)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    learner = models.ForeignKey(Learner, on_delete=models.CASCADE, related_name="assignments")
    # RESTRICT: an arm with assignments cannot be deleted on its own (retire it instead), but
    # deleting the whole experiment takes both.
    arm = models.ForeignKey(
        Arm, null=True, blank=True, on_delete=models.RESTRICT, related_name="assignments"
    )
    bucket = models.PositiveSmallIntegerField()
    band = models.CharField(
        max_length=8, blank=True, help_text="The learner's LPS band when assigned."
    )
    assigned_at = models.DateTimeField()
    window_ends_at = models.DateTimeField(
        help_text="assigned_at + the experiment's window: what happens before counts."
    )

    class Meta:
        ordering = ["experiment", "assigned_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "learner"], name="assignment_one_per_learner"
            ),
        ]
        indexes = [
            # Analysis reads an experiment's assignments per arm.
            models.Index(fields=["experiment", "arm"], name="assignment_arm_idx"),
        ]

    @property
    def is_holdout(self) -> bool:
        return self.arm_id is None

    def __str__(self) -> str:
        return f"{self.learner_id} → {self.arm or 'holdout'}"
