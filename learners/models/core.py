"""Accounts, learners, courses, modules, enrollments and events: what the platform syncs."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now, Upper

from expansion.core.timezones import available_time_zones

from .querysets import EventQuerySet, LearnerQuerySet


def validate_time_zone(value: str) -> None:
    if value not in available_time_zones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as 'Europe/London'.")


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
            # The admin's learner list at 1,000,000 learners (bench/growth.py), each a probe
            # instead of a scan: search by email ignoring case (``UPPER(email) =``), by the
            # whole name (``UPPER(name) =``), the date hierarchy's MIN/MAX, the
            # locale filter's choices (a loose index scan).
            models.Index(Upper("email"), name="learner_email_upper_idx"),
            models.Index(Upper("name"), name="learner_name_upper_idx"),
            models.Index(fields=["created_at"], name="learner_created_idx"),
            models.Index(fields=["locale"], name="learner_locale_idx"),
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
        # The course's title when it was loaded with the row (inlines, lists); otherwise the
        # ids, so that drawing many rows never queries once per row.
        course = self._state.fields_cache.get("course")
        if course is not None:
            return f"Enrolled in {course.title}"
        return f"Learner {self.learner_id} in course {self.course_id}"


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
        # In words, as the learner's page lists them ("Login at …", not "login by 1 at …").
        return f"{self.kind_label()} at {self.occurred_at:%Y-%m-%d %H:%M}"

    def kind_label(self) -> str:
        try:
            return EventKind(self.kind).label
        except ValueError:
            return self.kind
