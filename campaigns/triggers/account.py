"""Account and plan triggers: usage at a share of the quota, every seat in use, repeated
rate-limit hits, seat invitations, a premium feature attempted, an integration connected, the
renewal window, and the moment right after a purchase.

A subscription held by an account, and a ``usage_reported`` event of one of its members, reach
the account's members of the roles the campaign addresses (``addressed_rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    F,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Concat, TruncMonth

from expansion.commerce.models import Order, Subscription, SubscriptionStatus
from learners.models import AccountRole, Event, EventKind, Learner

from ..models import Campaign
from .columns import COLUMNS, as_text, event_rows, key_of, no_course, trigger_columns, window_events

LIVE = [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE]


ROLE_ORDER = (AccountRole.ADMIN, AccountRole.BILLING_OWNER, AccountRole.MEMBER)


def addressed_rows(
    c: Campaign,
    *,
    own: QuerySet,
    team: QuerySet,
    account: str,
    key: Callable[[], Any],
    occurred_at: Any,
    detail: Any,
) -> list[QuerySet]:
    """Trigger rows addressed by role: ``own`` rows reach their own learner (``learner_id``),
    ``team`` rows the members of the account at the relation path ``account`` — of the
    roles the campaign addresses (``target_roles``; empty: every role; an own row's learner
    is checked too), and with ``one_per_account`` only the first of them (admin, then billing
    owner, then member; then the oldest) — seed 004: "role-aware targeting so end-users
    aren't spammed with admin offers"."""
    roles = list(c.target_roles or [])
    own_rows = trigger_columns(
        own,
        learner_id=F("learner_id"),
        occurrence_key=key(),
        occurred_at=occurred_at,
        course_id=no_course(),
        detail=detail,
    )
    if roles:
        own_rows = own_rows.filter(learner__role__in=roles)
    members = Learner.objects.filter(account_id=OuterRef(f"{account}_id"))
    if roles:
        members = members.filter(role__in=roles)
    if c.one_per_account:
        rank = Case(
            *(When(role=role, then=Value(n)) for n, role in enumerate(ROLE_ORDER)),
            default=Value(len(ROLE_ORDER)),
            output_field=IntegerField(),
        )
        first = members.annotate(rank=rank).order_by("rank", "id").values("id")[:1]
        team_rows = trigger_columns(
            team,
            learner_id=Subquery(first),
            occurrence_key=key(),
            occurred_at=occurred_at,
            course_id=no_course(),
            detail=detail,
        ).filter(t_learner_id__isnull=False)
    else:
        # One annotate, one join: filtering the members in a separate call joined them a
        # second time (a row per member per member).
        members_of = team.annotate(
            member_id=F(f"{account}__learners__id"), member_role=F(f"{account}__learners__role")
        ).filter(member_id__isnull=False)
        if roles:
            members_of = members_of.filter(member_role__in=roles)
        team_rows = trigger_columns(
            members_of,
            learner_id=F("member_id"),
            occurrence_key=key(),
            occurred_at=occurred_at,
            course_id=no_course(),
            detail=detail,
        )
    return [own_rows, team_rows]


def subscription_rows(
    c: Campaign, subs: QuerySet, key: Callable[[], Any], detail: Any
) -> list[QuerySet]:
    """Rows for the learner holding each subscription, and for an account's subscription its
    members, addressed by role (``addressed_rows``)."""
    return addressed_rows(
        c,
        own=subs.filter(learner__isnull=False),
        team=subs.filter(account__isnull=False),
        account="account",
        key=key,
        occurred_at=F("updated_at"),
        detail=detail,
    )


def usage_threshold(p: dict) -> Any:
    """The threshold a share (in percent) has crossed: the highest of ``thresholds`` it
    reaches, else ``percent``; NULL outside the band (below percent, above upto)."""
    steps = sorted(p["thresholds"] or [p["percent"]], reverse=True)
    inside = Q(share__gte=p["percent"])
    if p["upto"]:
        inside &= Q(share__lte=p["upto"])
    whens = [When(inside & Q(share__gte=step), then=Value(step)) for step in steps]
    return Case(*whens, default=None, output_field=IntegerField())


def usage(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    """Usage at a share of the quota, from both sources: the subscription's quota fields and
    the platform's ``usage_reported`` events (properties ``used`` and ``limit``, and
    ``metric``). One occurrence per threshold crossed per billing period (subscriptions) or
    per metric and month (events)."""
    band = f"{p['percent']}–{p['upto']}%" if p["upto"] else f"{p['percent']}% or more"
    subs = (
        Subscription.objects.filter(status__in=LIVE, quota_limit__gt=0, updated_at__gte=since)
        .annotate(share=F("quota_used") * 100.0 / F("quota_limit"))
        .annotate(crossed=usage_threshold(p))
        .filter(crossed__isnull=False)
    )
    # The share itself in the reason (the threshold crossed is in the occurrence key).
    detail = Concat(
        Value("used "),
        as_text(Cast(F("share"), IntegerField())),
        Value(f"% of the plan's quota (band {band})"),
    )
    # One occurrence per threshold per billing period.
    period = Coalesce(as_text(F("renews_at")), Value(""))
    rows = subscription_rows(
        c, subs, lambda: key_of("usage", F("id"), F("crossed"), period), detail
    )
    used = Cast(KT("properties__used"), FloatField())
    limit = Cast(KT("properties__limit"), FloatField())
    events = (
        window_events(c, since, now, EventKind.USAGE_REPORTED)
        .annotate(used_n=used, limit_n=limit)
        .filter(limit_n__gt=0, used_n__isnull=False)
        .annotate(share=F("used_n") * 100.0 / F("limit_n"))
        .annotate(crossed=usage_threshold(p))
        .filter(crossed__isnull=False)
    )
    metric = Coalesce(Cast(KT("properties__metric"), CharField()), Value(""))
    # An event of a learner in an account is the account's usage: it reaches the account's
    # members of the addressed roles (one of them by default), as a team plan's quota does;
    # an event of a learner on their own reaches them if their role is addressed.
    rows += addressed_rows(
        c,
        own=events.filter(learner__account__isnull=True),
        team=events.filter(learner__account__isnull=False),
        account="learner__account",
        key=lambda: key_of("usage-reported", metric, F("crossed"), TruncMonth("occurred_at")),
        occurred_at=F("occurred_at"),
        detail=Concat(
            Value("reported "),
            as_text(Cast(F("share"), IntegerField())),
            Value("% of their "),
            metric,
            Value(f" limit used (band {band})"),
        ),
    )
    return rows


def seats(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    subs = Subscription.objects.filter(
        status__in=LIVE, seats_limit__gt=0, updated_at__gte=since, seats_used__gte=F("seats_limit")
    )
    detail = Concat(Value("every seat in use ("), as_text(F("seats_limit")), Value(")"))
    return subscription_rows(c, subs, lambda: key_of("seats", F("id"), F("seats_limit")), detail)


def counted(
    c: Campaign, p: dict, now: datetime, kind: str, minimum: int, days: int, key: str, what: str
) -> list[QuerySet]:
    qs = (
        Event.objects.filter(kind=kind, occurred_at__gt=now - timedelta(days=days))
        .filter(occurred_at__lte=now)
        .values("learner_id")
        .annotate(n=Count("*"), last=Max("occurred_at"))
        .filter(n__gte=minimum)
    )
    return [
        qs.annotate(
            t_learner_id=F("learner_id"),
            t_occurrence_key=Value(key),
            t_occurred_at=F("last"),
            t_course_id=no_course(),
            t_detail=Concat(as_text(F("n")), Value(f" {what} in {days} days")),
        )
        .order_by()
        .values(*(f"t_{name}" for name in COLUMNS))
    ]


def rate_limited(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    week = now.strftime("%G-W%V")
    return counted(
        c,
        p,
        now,
        EventKind.RATE_LIMITED,
        p["min_hits"],
        p["days"],
        f"ratelimit:{week}",
        "rate-limit hits",
    )


def team_growth(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    return counted(
        c,
        p,
        now,
        EventKind.SEAT_INVITED,
        p["min_invites"],
        p["days"],
        f"team:{now:%Y-%m}",
        "seat invitations",
    )


def premium_feature(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = window_events(c, since, now, EventKind.PREMIUM_FEATURE_ATTEMPTED)
    detail = Concat(
        Value("tried a premium feature "),
        Coalesce(Cast(F("properties__feature"), CharField()), Value("")),
    )
    return [event_rows(qs, detail)]


def integration(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = window_events(c, since, now, EventKind.INTEGRATION_CONNECTED)
    return [event_rows(qs, Value("connected an integration"))]


def renewal(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    subs = Subscription.objects.filter(
        status__in=LIVE,
        renews_at__gte=now + timedelta(days=p["min_days"]),
        renews_at__lte=now + timedelta(days=p["max_days"]),
    )
    detail = Concat(Value("plan renews on "), as_text(Cast("renews_at", DateTimeField())))
    return subscription_rows(c, subs, lambda: key_of("renewal", F("id"), F("renews_at")), detail)


def after_purchase(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = Order.objects.filter(placed_at__gte=since, placed_at__lte=now)
    if p["sku"]:
        qs = qs.filter(lines__product__sku=p["sku"]).distinct()
    return [
        trigger_columns(
            qs,
            learner_id=F("learner_id"),
            occurrence_key=key_of("order", F("id")),
            occurred_at=F("placed_at"),
            course_id=no_course(),
            detail=Value("just bought"),
        )
    ]
