"""Scoring: the versioned scoring model, the derived score tables, the dirty-learner log,
the record of each pass and the RFM map."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.db.models.lookups import Exact

from .core import Course, Enrollment, Learner


class ScoringModel(models.Model):
    """The numbers behind scores, stages and flags (seeds 000, 001, 003), versioned.

    Rows are never edited in place: saving a change in the admin creates the next version and
    makes it active, so every stored score names the version that produced it.
    """

    version = models.PositiveIntegerField(unique=True, editable=False)
    is_active = models.BooleanField(default=False, editable=False)
    note = models.CharField(max_length=255, blank=True, help_text="What changed and why.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Learner Progress Score weights (seed 000), percent; they must add up to 100.
    weight_completion = models.PositiveSmallIntegerField(default=40)
    weight_assessment = models.PositiveSmallIntegerField(default=25)
    weight_community = models.PositiveSmallIntegerField(default=15)
    weight_downloads = models.PositiveSmallIntegerField(default=10)
    weight_login = models.PositiveSmallIntegerField(default=10)
    # Normalisation: a component is min(1, count / cap) over its window.
    activity_window_days = models.PositiveSmallIntegerField(
        default=30, help_text="Window for community, downloads and login frequency."
    )
    community_cap = models.PositiveSmallIntegerField(
        default=5, help_text="Posts + questions in the window that earn full marks."
    )
    downloads_cap = models.PositiveSmallIntegerField(
        default=5, help_text="Downloads in the window that earn full marks."
    )
    login_cap = models.PositiveSmallIntegerField(
        default=12, help_text="Logins in the window that earn full frequency marks."
    )
    login_recent_days = models.PositiveSmallIntegerField(
        default=7, help_text="A login within this many days earns full recency marks…"
    )
    login_lapsed_days = models.PositiveSmallIntegerField(
        default=30, help_text="…and within this many, half. Login = ½ recency + ½ frequency."
    )
    # Bands (seed 000 step 5).
    band_high = models.PositiveSmallIntegerField(default=70, help_text="High band: LPS ≥ this.")
    band_mid = models.PositiveSmallIntegerField(default=40, help_text="Mid band: LPS ≥ this.")
    # Lifecycle (seed 003), in days since the learner's first enrollment.
    onboarding_days = models.PositiveSmallIntegerField(default=30)
    growth_days = models.PositiveSmallIntegerField(default=180)
    renewal_window_days = models.PositiveSmallIntegerField(
        default=90, help_text="Renewal stage when an active subscription renews within this."
    )
    decline_ratio = models.FloatField(
        default=0.5,
        help_text="At-risk when activity in the last 30 days is below this share of the "
        "30-day average of the 90 days before.",
    )
    decline_min_prior_events = models.PositiveSmallIntegerField(
        default=6, help_text="…and those 90 days held at least this many events."
    )
    # Risk flags.
    stall_logins_per_week = models.PositiveSmallIntegerField(default=3)
    stall_active_weeks = models.PositiveSmallIntegerField(default=4)
    stall_silent_days = models.PositiveSmallIntegerField(default=10)
    payment_failed_days = models.PositiveSmallIntegerField(default=14)
    offer_declined_days = models.PositiveSmallIntegerField(default=30)
    refund_days = models.PositiveSmallIntegerField(default=90)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="scoringmodel_one_active"
            ),
            models.CheckConstraint(
                condition=Q(band_mid__lte=F("band_high")) & Q(band_high__lte=100),
                name="scoringmodel_bands_ordered",
            ),
            models.CheckConstraint(
                condition=Exact(
                    F("weight_completion")
                    + F("weight_assessment")
                    + F("weight_community")
                    + F("weight_downloads")
                    + F("weight_login"),
                    100,
                ),
                name="scoringmodel_weights_sum_100",
            ),
        ]

    def __str__(self) -> str:
        return f"Scoring model v{self.version}" + (" (active)" if self.is_active else "")

    def clean(self) -> None:
        total = sum(self.weights.values())
        if total != 100:
            raise ValidationError(f"The five weights must add up to 100; they add up to {total}.")
        if self.band_mid > self.band_high:
            raise ValidationError("The Mid band threshold must not exceed the High threshold.")
        if self.login_recent_days > self.login_lapsed_days:
            raise ValidationError("login_recent_days must not exceed login_lapsed_days.")
        if self.onboarding_days >= self.growth_days:
            raise ValidationError("onboarding_days must be less than growth_days.")

    @property
    def weights(self) -> dict[str, int]:
        return {
            "completion": self.weight_completion,
            "assessment": self.weight_assessment,
            "community": self.weight_community,
            "downloads": self.weight_downloads,
            "login": self.weight_login,
        }


class Band(models.TextChoices):
    HIGH = "high", "High (expansion-ready)"
    MID = "mid", "Mid (finish to unlock)"
    LOW = "low", "Low (re-engage, do not upsell)"


class Stage(models.TextChoices):
    ONBOARDING = "onboarding", "Onboarding"
    GROWTH = "growth", "Growth"
    MATURITY = "maturity", "Maturity"
    RENEWAL = "renewal", "Renewal"
    AT_RISK = "at_risk", "At risk"


# The score tables are derived data written set-based by the scoring pass, from a join with
# the learners in the same statement. They carry no database foreign keys: Django's deferred
# FK checks cost 98 s at commit of the first pass over 1,000,000 learners (bench/scoring.py).
# Deleting a learner through Django still deletes their scores (on_delete=CASCADE).
DERIVED_DB_FK = False  # db_constraint of the derived tables' foreign keys


class LearnerScore(models.Model):
    """A learner's current scores, stage and flags, with the parts that explain them."""

    learner = models.OneToOneField(
        Learner,
        primary_key=True,
        related_name="score",
        on_delete=models.CASCADE,
        db_constraint=DERIVED_DB_FK,
    )
    model_version = models.PositiveIntegerField()
    lps = models.FloatField("LPS")
    band = models.CharField(max_length=8, choices=Band.choices)
    completion = models.FloatField(help_text="0–1: modules completed / modules, averaged.")
    assessment = models.FloatField(help_text="0–1: mean assessment score / 100.")
    community = models.FloatField(help_text="0–1: posts + questions / cap.")
    downloads = models.FloatField(help_text="0–1: downloads / cap.")
    login = models.FloatField(help_text="0–1: ½ recency + ½ frequency.")
    rfm_recency = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_frequency = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_monetary = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_cell = models.CharField(max_length=5, blank=True, help_text="R-F-M, e.g. 5-5-5.")
    rfm_segment = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=12, choices=Stage.choices)
    flag_stall = models.BooleanField(default=False)
    flag_open_ticket = models.BooleanField(default=False)
    flag_payment_failed = models.BooleanField(default=False)
    flag_offer_declined = models.BooleanField(default=False)
    flag_refund = models.BooleanField(default=False)
    last_event_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Segments filter by band and stage.
            models.Index(fields=["band", "stage"], name="learnerscore_band_stage_idx"),
        ]

    def __str__(self) -> str:
        return f"LPS {self.lps:.0f} ({self.band})"

    FLAGS = ("stall", "open_ticket", "payment_failed", "offer_declined", "refund")

    @property
    def flags(self) -> list[str]:
        return [name for name in self.FLAGS if getattr(self, f"flag_{name}")]

    def components(self) -> dict[str, float]:
        return {
            "completion": self.completion,
            "assessment": self.assessment,
            "community": self.community,
            "downloads": self.downloads,
            "login": self.login,
        }


class EnrollmentScore(models.Model):
    enrollment = models.OneToOneField(
        Enrollment,
        primary_key=True,
        related_name="score",
        on_delete=models.CASCADE,
        db_constraint=DERIVED_DB_FK,
    )
    learner = models.ForeignKey(
        Learner, related_name="+", on_delete=models.CASCADE, db_constraint=DERIVED_DB_FK
    )
    # No index on course: the per-course chart reads every row anyway.
    course = models.ForeignKey(
        Course,
        related_name="+",
        on_delete=models.CASCADE,
        db_constraint=DERIVED_DB_FK,
        db_index=False,
    )
    model_version = models.PositiveIntegerField()
    lps = models.FloatField("LPS")
    band = models.CharField(max_length=8, choices=Band.choices)
    completion = models.FloatField()
    assessment = models.FloatField()
    community = models.FloatField()
    downloads = models.FloatField()
    login = models.FloatField()
    computed_at = models.DateTimeField()

    # learner_id is indexed as a foreign key: incremental passes average a learner's
    # enrollments, and the API lists them.


class ScoreHistory(models.Model):
    """A learner's score on each day it changed (one row per learner a day at most)."""

    learner = models.ForeignKey(
        Learner,
        related_name="score_history",
        on_delete=models.CASCADE,
        db_constraint=DERIVED_DB_FK,
        db_index=False,  # scorehistory_unique_day leads with the learner
    )
    day = models.DateField()
    lps = models.FloatField("LPS")
    band = models.CharField(max_length=8, choices=Band.choices)
    stage = models.CharField(max_length=12, choices=Stage.choices)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["learner", "day"], name="scorehistory_unique_day")
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d}: LPS {self.lps:.0f}, {self.get_band_display()}"


class DirtyLearner(models.Model):
    """A log of learners with new data since their last scoring pass.

    Append-only, with no unique key on the learner: concurrent event batches naming the same
    learners never wait on (or deadlock over) each other's uncommitted rows, as they did with a
    unique row per learner (bench/ingest.py, 16 concurrent clients). A scoring pass claims a
    learner by deleting all of their rows.
    """

    learner = models.ForeignKey(
        Learner, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    marked_at = models.DateTimeField(db_default=Now())


class ScoringRun(models.Model):
    """One scoring pass: what it did and how long it took."""

    kind = models.CharField(
        max_length=12,
        choices=[
            ("full", "Full, from scratch"),
            ("delta", "Delta (everyone whose inputs changed)"),
            ("incremental", "Incremental (dirty learners)"),
        ],
    )
    model_version = models.PositiveIntegerField()
    fingerprint = models.CharField(
        max_length=32, blank=True, help_text="The model and RFM map the pass used."
    )
    as_of = models.DateTimeField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    learners = models.PositiveIntegerField(default=0, help_text="Learners scored.")
    changed = models.PositiveIntegerField(default=0, help_text="Learners whose score changed.")
    rfm_thresholds = models.JSONField(
        default=dict, blank=True, help_text="Quintile upper bounds used for R, F and M."
    )
    timings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]


class RfmSegment(models.Model):
    """A named RFM cell range (seed 001's Segment-to-Offer map), first match by priority."""

    name = models.CharField(max_length=64, unique=True)
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower wins.")
    r_min = models.PositiveSmallIntegerField(default=1)
    r_max = models.PositiveSmallIntegerField(default=5)
    f_min = models.PositiveSmallIntegerField(default=1)
    f_max = models.PositiveSmallIntegerField(default=5)
    m_min = models.PositiveSmallIntegerField(default=1)
    m_max = models.PositiveSmallIntegerField(default=5)
    move = models.TextField(help_text="The intended expansion move for this cell.")
    do_not_pitch = models.BooleanField(
        default=False, help_text="Suppress expansion offers for this cell."
    )

    class Meta:
        ordering = ["priority", "name"]
        verbose_name = "RFM segment"
        constraints = [
            models.CheckConstraint(
                condition=Q(r_min__gte=1, r_max__lte=5, f_min__gte=1, f_max__lte=5)
                & Q(m_min__gte=1, m_max__lte=5)
                & Q(r_min__lte=F("r_max"), f_min__lte=F("f_max"), m_min__lte=F("m_max")),
                name="rfmsegment_ranges_valid",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def cells(self) -> str:
        return f"{self.r_min}-{self.f_min}-{self.m_min} to {self.r_max}-{self.f_max}-{self.m_max}"
