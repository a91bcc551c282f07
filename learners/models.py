"""Learners and what they do: accounts, learners, courses, modules, enrollments, events."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.db.models.lookups import Exact
from django.utils import timezone

from .querysets import EventQuerySet, LearnerQuerySet


def validate_time_zone(value: str) -> None:
    if value not in available_time_zones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as 'Europe/London'.")


_TIME_ZONES: frozenset[str] | None = None


def available_time_zones() -> frozenset[str]:
    global _TIME_ZONES
    if _TIME_ZONES is None:
        _TIME_ZONES = frozenset(zoneinfo.available_timezones())
    return _TIME_ZONES


class Account(models.Model):
    """A paying organisation (a team plan); learners may belong to one."""

    external_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name or self.external_id


class MessageCategory(models.TextChoices):
    """What a message is about. Learners opt out per marketing category; transactional
    messages (receipts, account) are not marketing and need no consent."""

    OFFERS = "offers", "Offers and upgrades"
    LEARNING = "learning", "Learning tips and progress"
    NEWS = "news", "Product news"
    TRANSACTIONAL = "transactional", "Transactional (receipts, account)"


MARKETING_CATEGORIES = (MessageCategory.OFFERS, MessageCategory.LEARNING, MessageCategory.NEWS)


class AccountRole(models.TextChoices):
    """A learner's role in their account (synced): account-level offers reach the roles a
    campaign names (seed 004: "role-aware targeting so end-users aren't spammed with admin
    offers")."""

    ADMIN = "admin", "Admin"
    BILLING_OWNER = "billing_owner", "Billing owner"
    MEMBER = "member", "Member"


class Learner(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=255, blank=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="learners"
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    locale = models.CharField(max_length=16, default="en")
    marketing_opt_in = models.BooleanField(
        default=False, help_text="Consent to marketing messages (offers)."
    )
    unsubscribed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the learner unsubscribes from all marketing."
    )
    attributes = models.JSONField(default=dict, blank=True)
    role = models.CharField(
        max_length=20,
        choices=AccountRole.choices,
        default=AccountRole.MEMBER,
        help_text="Their role in their account (synced).",
    )
    signed_up_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When they signed up on the platform (synced); onboarding counts from it, "
        "else from their first enrolment.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = models.Manager.from_queryset(LearnerQuerySet)()

    class Meta:
        ordering = ["id"]
        indexes = [
            # Admin search and the API's ?email= filter.
            models.Index(fields=["email"], name="learner_email_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class Course(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=255)
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="courses",
        help_text="The course creator who reviews what goes out for this course.",
    )
    url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Where the course lives on the platform (course.url in messages: the stall "
        "email's 'Continue the course').",
    )
    learning_path = models.CharField(max_length=255, blank=True)
    path_position = models.PositiveIntegerField(
        null=True, blank=True, help_text="1 for the first course of its learning path."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["learning_path", "path_position", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["learning_path", "path_position"],
                condition=~Q(learning_path=""),
                name="course_unique_path_position",
            ),
            models.CheckConstraint(
                condition=Q(path_position__isnull=True) | ~Q(learning_path=""),
                name="course_position_needs_path",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Module(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="modules")
    external_id = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    position = models.PositiveIntegerField()
    is_final = models.BooleanField(default=False)

    class Meta:
        ordering = ["course", "position"]
        constraints = [
            models.UniqueConstraint(fields=["course", "external_id"], name="module_unique_ext"),
            models.UniqueConstraint(fields=["course", "position"], name="module_unique_position"),
            models.UniqueConstraint(
                fields=["course"], condition=Q(is_final=True), name="module_one_final_per_course"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.course_id}:{self.position} {self.title}".strip()


class Enrollment(models.Model):
    learner = models.ForeignKey(Learner, on_delete=models.CASCADE, related_name="enrollments")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="enrollments")
    enrolled_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    progress = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, help_text="Percent of the course done, 0–100."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-enrolled_at"]
        constraints = [
            models.UniqueConstraint(fields=["learner", "course"], name="enrollment_unique"),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100),
                name="enrollment_progress_0_100",
            ),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True) | Q(completed_at__gte=F("enrolled_at")),
                name="enrollment_completed_after_enrolled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.learner_id} in {self.course_id}"


class EventKind(models.TextChoices):
    MODULE_COMPLETED = "module_completed", "Module completed"
    ASSESSMENT_SUBMITTED = "assessment_submitted", "Assessment submitted (value = score 0–100)"
    LOGIN = "login", "Login"
    RESOURCE_DOWNLOADED = "resource_downloaded", "Resource downloaded"
    LESSON_BOOKMARKED = "lesson_bookmarked", "Lesson bookmarked"
    COMMUNITY_POST = "community_post", "Community post (properties.text)"
    COMMUNITY_QUESTION = "community_question", "Community question (properties.text)"
    FEATURE_USED = "feature_used", "Feature used (properties.feature)"
    PREMIUM_FEATURE_ATTEMPTED = "premium_feature_attempted", "Premium feature attempted"
    USAGE_REPORTED = "usage_reported", "Usage reported (properties.metric, used, limit)"
    RATE_LIMITED = "rate_limited", "Rate limit hit"
    SEAT_INVITED = "seat_invited", "Seat invited"
    INTEGRATION_CONNECTED = "integration_connected", "Integration connected"
    SUPPORT_TICKET_OPENED = "support_ticket_opened", "Support ticket opened"
    SUPPORT_TICKET_RESOLVED = "support_ticket_resolved", "Support ticket resolved"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    OFFER_DECLINED = "offer_declined", "Offer declined (properties.reason)"


# Custom kinds are "custom.<name>", e.g. "custom.webinar_attended".
CUSTOM_KIND_PREFIX = "custom."


class Event(models.Model):
    """Something a learner did, as the platform reported it. Append-only; idempotent by key."""

    learner = models.ForeignKey(
        Learner,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # covered by event_learner_kind_time_idx
    )
    kind = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    course = models.ForeignKey(
        Course,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
        # No index: every index costs ingestion throughput (bench/ingest.py); scoring reads
        # events by learner, and deleting a course is rare enough to afford a scan.
        db_index=False,
    )
    module = models.ForeignKey(
        Module, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    properties = models.JSONField(default=dict, blank=True)
    # Unique through Meta.constraints, not unique=True: on PostgreSQL a unique CharField also
    # gets a second, varchar_pattern_ops index for LIKE queries that nothing here runs, and
    # every index costs ingestion throughput.
    idempotency_key = models.CharField(max_length=200)
    received_at = models.DateTimeField(db_default=Now())

    objects = models.Manager.from_queryset(EventQuerySet)()

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="event_idempotency_key_unique")
        ]
        indexes = [
            # Scoring and triggers read a learner's events of a kind in a time window. The
            # included columns are the rest of what scoring reads, so an incremental pass
            # reads the index alone (PostgreSQL index-only scan): 0.7–1.2 s → 0.3 s for
            # 10,000 learners among 10,000,000 events (bench/scoring.py).
            models.Index(
                fields=["learner", "kind", "occurred_at"],
                include=["course", "module", "value"],
                name="event_learner_kind_time_idx",
            ),
            # The scheduled delta pass finds the events that crossed a window's edge since the
            # previous pass: a few thousand rows per hour, read from this index alone.
            models.Index(
                fields=["occurred_at"], include=["learner", "kind"], name="event_time_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.learner_id} at {self.occurred_at:%Y-%m-%d %H:%M}"

    def kind_label(self) -> str:
        try:
            return EventKind(self.kind).label
        except ValueError:
            return self.kind


# --- Scoring -------------------------------------------------------------------------------


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


# --- Segments ------------------------------------------------------------------------------


class Segment(models.Model):
    """A marketer's audience: a rule tree over learners, with materialised membership."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    definition = models.JSONField(
        default=dict, help_text="Rule tree; see the reference beside the editor."
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    size = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """A learner's stay in a segment: entered_at, and exited_at once they leave."""

    # No single-column indexes: (segment, entered_at) and (learner, exited_at) lead with them.
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    learner = models.ForeignKey(
        Learner, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-entered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "learner"],
                condition=Q(exited_at__isnull=True),
                name="segmentmembership_one_open",
            )
        ]
        indexes = [
            # Triggers read recent entries of a segment.
            models.Index(fields=["segment", "entered_at"], name="membership_segment_entered_idx"),
            models.Index(fields=["learner", "exited_at"], name="membership_learner_idx"),
        ]


class SegmentSnapshot(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="snapshots")
    day = models.DateField()
    size = models.PositiveIntegerField()

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "day"], name="segmentsnapshot_unique_day")
        ]


class CategoryOptOut(models.Model):
    """A learner's standing "no" to one marketing category (the preference page writes it)."""

    learner = models.ForeignKey(Learner, on_delete=models.CASCADE, related_name="opt_outs")
    category = models.CharField(max_length=20, choices=MessageCategory.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["learner", "category"]
        constraints = [
            models.UniqueConstraint(fields=["learner", "category"], name="optout_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.learner_id} opted out of {self.category}"


class ConsentSource(models.TextChoices):
    ONE_CLICK = "one_click", "One-click unsubscribe (List-Unsubscribe-Post)"
    PREFERENCES = "preferences", "Preference page"
    ADMIN = "admin", "Admin"
    API = "api", "API"


class ConsentChange(models.Model):
    """Every change of a learner's consent, kept: who, what, how and from which message."""

    learner = models.ForeignKey(Learner, on_delete=models.CASCADE, related_name="consent_changes")
    category = models.CharField(
        max_length=20, blank=True, help_text="Empty: all marketing (unsubscribe from everything)."
    )
    subscribed = models.BooleanField()
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    send_id = models.BigIntegerField(
        null=True, blank=True, help_text="The message whose link made the change, if any."
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["learner", "changed_at"], name="consent_learner_idx")]

    def __str__(self) -> str:
        verb = "subscribed to" if self.subscribed else "unsubscribed from"
        return f"{self.learner_id} {verb} {self.category or 'all marketing'}"


class SuppressionReason(models.TextChoices):
    BOUNCE = "bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    REJECTED = "rejected", "Rejected by the provider"
    MANUAL = "manual", "Added by hand"


class EmailSuppression(models.Model):
    """An address nothing is sent to (not even transactional mail): bounced or complained.

    Stored lower-cased; the provider's tracking webhooks add rows (campaigns.delivery)."""

    email = models.EmailField(unique=True)
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"

    def save(self, *args, **kwargs):
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)
