"""The five columns every trigger query yields, and the pieces the trigger families build
them from.

``learner_id``, ``occurrence_key`` (what makes two firings different: an event's id, a
subscription's renewal date, a week), ``occurred_at``, ``course_id`` and ``detail`` (the "why"
in words, built in SQL), each as an annotation named ``t_<column>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import BigIntegerField, CharField, F, QuerySet, Value
from django.db.models.functions import Cast, Concat

from learners.models import Event

from ..models import Campaign

COLUMNS = ("learner_id", "occurrence_key", "occurred_at", "course_id", "detail")


def no_course() -> Cast:
    # A typed NULL: PostgreSQL will not put an untyped parameter into a bigint column.
    return Cast(Value(None), output_field=BigIntegerField())


def as_text(expression: Any) -> Cast:
    return Cast(expression, output_field=CharField())


def key_of(prefix: str, *parts: Any) -> Concat:
    pieces: list[Any] = [Value(prefix)]
    for part in parts:
        pieces += [Value(":"), as_text(part)]
    return Concat(*pieces, output_field=CharField())


def trigger_columns(qs: QuerySet, **columns: Any) -> QuerySet:
    """The five columns, in order, from annotations named after them."""
    names = {f"t_{name}": value for name, value in columns.items()}
    return qs.order_by().annotate(**names).values(*(f"t_{name}" for name in COLUMNS))


def window_events(campaign: Campaign, since: datetime, now: datetime, kind: str) -> QuerySet:
    # An occurrence exactly as old as the send window is still in it ("older than this is no
    # longer acted on").
    qs = Event.objects.filter(kind=kind, occurred_at__gte=since, occurred_at__lte=now)
    if campaign.course_id:
        qs = qs.filter(course_id=campaign.course_id)
    return qs


def event_rows(qs: QuerySet, detail: Any) -> QuerySet:
    return trigger_columns(
        qs,
        learner_id=F("learner_id"),
        occurrence_key=key_of("event", F("id")),
        occurred_at=F("occurred_at"),
        course_id=F("course_id"),
        detail=detail,
    )
