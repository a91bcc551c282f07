"""Segments: a marketer's rule tree, its materialised membership and daily sizes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .core import Learner


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
