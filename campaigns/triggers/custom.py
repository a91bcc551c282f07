"""Triggers a marketer defines: entering a segment, and a custom event with property filters."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, QuerySet, Value
from django.db.models.functions import Concat

from learners.models import SegmentMembership

from ..models import Campaign
from .columns import event_rows, key_of, no_course, trigger_columns, window_events


def segment_entry(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = SegmentMembership.objects.filter(
        segment_id=p["segment"], exited_at__isnull=True, entered_at__gte=since
    )
    return [
        trigger_columns(
            qs,
            learner_id=F("learner_id"),
            occurrence_key=key_of("segment", F("id")),
            occurred_at=F("entered_at"),
            course_id=no_course(),
            detail=Concat(Value("joined the segment "), F("segment__name")),
        )
    ]


def custom(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = window_events(c, since, now, p["kind"])
    for name, value in sorted(p["properties"].items()):
        qs = qs.filter(**{f"properties__{name}": value})
    return [event_rows(qs, Concat(Value("did "), F("kind")))]
