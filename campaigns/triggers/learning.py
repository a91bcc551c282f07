"""Learning-journey triggers: the final module completed, a high assessment score mid-course,
a stall after weekly activity, a question implying the curriculum is exhausted, and the weeks
after a course completion (cross-sell)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    CharField,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Concat, Lower, Replace

from learners.models import Enrollment, Event, EventKind, Learner
from learners.scoring import STALL_ACTIVITY

from ..models import Campaign
from .columns import as_text, event_rows, key_of, no_course, trigger_columns, window_events


def final_module(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = window_events(c, since, now, EventKind.MODULE_COMPLETED).filter(module__is_final=True)
    detail = Concat(Value("completed the final module of "), F("course__title"))
    return [event_rows(qs, detail)]


def assessment_high(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    unfinished = Enrollment.objects.filter(
        learner_id=OuterRef("learner_id"), course_id=OuterRef("course_id"), completed_at=None
    )
    qs = window_events(c, since, now, EventKind.ASSESSMENT_SUBMITTED).filter(
        value__gte=p["min_score"], course__isnull=False
    )
    qs = qs.filter(Exists(unfinished))
    detail = Concat(
        Value("scored "),
        as_text(Cast("value", IntegerField())),
        Value(" on an assessment mid-way through "),
        F("course__title"),
    )
    return [event_rows(qs, detail)]


def stall(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    last_active = (
        Event.objects.filter(
            learner_id=OuterRef("pk"), kind__in=STALL_ACTIVITY, occurred_at__lte=now
        )
        .order_by()
        .values("learner_id")
        .annotate(last=Max("occurred_at"))
        .values("last")
    )
    qs = Learner.objects.filter(score__flag_stall=True).annotate(silent_since=Subquery(last_active))
    qs = qs.filter(silent_since__isnull=False)
    return [
        trigger_columns(
            qs,
            learner_id=F("id"),
            # One occurrence per silence: keyed by the last login or learning before it (an
            # event of another kind during the silence made it a new occurrence: a second
            # email).
            occurrence_key=key_of("stall", F("silent_since")),
            occurred_at=F("silent_since"),
            course_id=no_course(),
            detail=Value("was active weekly, silent since their last visit"),
        )
    ]


QUOTES = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "}


def phrase_normal(text: str) -> str:
    """How phrases and questions are compared: straight quotes, lower case, single spaces."""
    for curly, straight in QUOTES.items():
        text = text.replace(curly, straight)
    return " ".join(text.lower().split())


def normal_sql(expression: Any) -> Any:
    """``phrase_normal`` in SQL: quotes straightened, lower case, tabs and line breaks as
    spaces, runs of up to eight spaces made one."""
    for curly, straight in QUOTES.items():
        expression = Replace(expression, Value(curly), Value(straight))
    for blank in ("\n", "\r", "\t"):
        expression = Replace(expression, Value(blank), Value(" "))
    for _ in range(3):
        expression = Replace(expression, Value("  "), Value(" "))
    return Lower(expression)


def curriculum_exhausted(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    said = Q()
    for phrase in p["phrases"]:
        said |= Q(question__contains=phrase_normal(phrase))
    qs = (
        window_events(c, since, now, EventKind.COMMUNITY_QUESTION)
        .annotate(question=normal_sql(Cast(KT("properties__text"), CharField())))
        .filter(said)
    )
    detail = Value("asked in the community what to learn next")
    return [event_rows(qs, detail)]


def cross_sell(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = Enrollment.objects.filter(
        completed_at__gte=now - timedelta(days=p["max_days"]),
        completed_at__lte=now - timedelta(days=p["min_days"]),
    )
    if c.course_id:
        qs = qs.filter(course_id=c.course_id)
    return [
        trigger_columns(
            qs,
            learner_id=F("learner_id"),
            occurrence_key=key_of("xsell", F("id")),
            occurred_at=F("completed_at"),
            course_id=F("course_id"),
            detail=Concat(Value("completed "), F("course__title"), Value(" a few weeks ago")),
        )
    ]
