"""Triggers: which learners a campaign's trigger finds now, one row per trigger occurrence.

Each trigger is a set of querysets (usually one) whose rows carry the same five columns:
``learner_id``, ``occurrence_key`` (what makes two firings different: an event's id, a
subscription's renewal date, a week), ``occurred_at``, ``course_id`` and ``detail`` (the "why"
in words, built in SQL). ``campaigns.evaluate`` inserts them into the candidates table with one
``INSERT … SELECT`` each: no loop over learners. Parameters and their defaults are in
``PARAMS`` (seeds 001, 003 and 004) and are checked when a campaign is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
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
from django.db.models.functions import Cast, Coalesce, Concat, Lower, Replace, TruncMonth

from expansion.commerce.models import Order, Subscription, SubscriptionStatus
from learners.models import (
    AccountRole,
    Enrollment,
    Event,
    EventKind,
    Learner,
    SegmentMembership,
)

from .models import Campaign, TriggerKind

LIVE = [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE]
COLUMNS = ("learner_id", "occurrence_key", "occurred_at", "course_id", "detail")


@dataclass(frozen=True)
class Param:
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    item: type = str  # for lists: the type of their items


DEFAULT_PHRASES = [
    "what should i learn next",
    "what's next",
    "what is next",
    "more advanced",
    "next course",
    "finished everything",
    "anything else to learn",
]

PARAMS: dict[str, dict[str, Param]] = {
    TriggerKind.FINAL_MODULE: {},
    TriggerKind.ASSESSMENT_HIGH: {
        "min_score": Param(float, 80.0, 0, 100, "assessment score, 0–100"),
    },
    TriggerKind.STALL: {},
    TriggerKind.CURRICULUM_EXHAUSTED: {
        "phrases": Param(list, DEFAULT_PHRASES, help="case-insensitive phrases in the question"),
    },
    TriggerKind.USAGE_THRESHOLD: {
        "percent": Param(int, 80, 1, 1000, "share of the quota used, at least (70, 80 …)"),
        "upto": Param(
            int, 0, 0, 1000, "…and at most (seed 004: 70–85 %: percent 70, upto 85; 0: no limit)"
        ),
        "thresholds": Param(
            list,
            [],
            help="fire once at each of these shares as it is crossed, e.g. [80, 90, 100] "
            "(seed 002); empty: once at percent",
            item=int,
        ),
    },
    TriggerKind.SEAT_SATURATION: {},
    TriggerKind.RATE_LIMITED: {
        "min_hits": Param(int, 3, 1, 100_000),
        "days": Param(int, 7, 1, 365),
    },
    TriggerKind.PREMIUM_FEATURE: {},
    TriggerKind.INTEGRATION: {},
    TriggerKind.TEAM_GROWTH: {
        "min_invites": Param(int, 3, 1, 100_000),
        "days": Param(int, 30, 1, 365),
    },
    TriggerKind.RENEWAL: {
        "min_days": Param(int, 60, 0, 730, "renews in at least this many days…"),
        "max_days": Param(int, 90, 1, 730, "…and at most this many"),
    },
    TriggerKind.AFTER_PURCHASE: {
        "sku": Param(str, "", help="only orders of this product (empty: any)"),
    },
    TriggerKind.CROSS_SELL: {
        "min_days": Param(int, 14, 0, 365, "days after completing a course: from…"),
        "max_days": Param(int, 28, 1, 365, "…to"),
    },
    TriggerKind.SEGMENT_ENTRY: {
        "segment": Param(int, None, help="id of the segment whose new members it finds"),
    },
    TriggerKind.CUSTOM_EVENT: {
        "kind": Param(str, None, help="custom.<name>"),
        "properties": Param(dict, {}, help="properties the event must carry, exactly"),
    },
}


def trigger_params_errors(kind: str, params: Any) -> list[str]:
    """What is wrong with ``params`` for a trigger of ``kind`` (empty list: nothing)."""
    if kind not in PARAMS:
        return [f"unknown trigger {kind!r}"]
    if not isinstance(params, dict):
        return ["must be an object"]
    spec = PARAMS[kind]
    errors = [f"unknown parameter {name!r}" for name in sorted(set(params) - set(spec))]
    for name, param in spec.items():
        if name not in params:
            if param.default is None:
                errors.append(f"{name}: required ({param.help})")
            continue
        value = params[name]
        ok = isinstance(value, param.kind) and not (
            param.kind in (int, float) and isinstance(value, bool)
        )
        if param.kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            errors.append(f"{name}: must be {param.kind.__name__}")
            continue
        if param.minimum is not None and value < param.minimum:
            errors.append(f"{name}: must be ≥ {param.minimum:g}")
        if param.maximum is not None and value > param.maximum:
            errors.append(f"{name}: must be ≤ {param.maximum:g}")
        if param.kind is list and param.item is str:
            if not all(isinstance(v, str) and v.strip() for v in value):
                errors.append(f"{name}: must be a list of non-empty strings")
        elif param.kind is list and not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000 for v in value
        ):
            errors.append(f"{name}: must be a list of whole percentages 1–1000")
    if kind == TriggerKind.CUSTOM_EVENT and not str(params.get("kind", "")).startswith("custom."):
        errors.append("kind: must start with 'custom.'")
    lower, upper = params.get("percent"), params.get("upto")
    if isinstance(lower, int) and isinstance(upper, int) and upper and upper < lower:
        errors.append("upto must not be below percent")
    low, high = params.get("min_days"), params.get("max_days")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.append("min_days must not exceed max_days")
    return errors


def params_for(campaign: Campaign) -> dict[str, Any]:
    spec = PARAMS[campaign.trigger]
    return {name: campaign.trigger_params.get(name, p.default) for name, p in spec.items()}


def _no_course() -> Cast:
    # A typed NULL: PostgreSQL will not put an untyped parameter into a bigint column.
    return Cast(Value(None), output_field=BigIntegerField())


def _text(expression: Any) -> Cast:
    return Cast(expression, output_field=CharField())


def _key(prefix: str, *parts: Any) -> Concat:
    pieces: list[Any] = [Value(prefix)]
    for part in parts:
        pieces += [Value(":"), _text(part)]
    return Concat(*pieces, output_field=CharField())


def _rows(qs: QuerySet, **columns: Any) -> QuerySet:
    """The five columns, in order, from annotations named after them."""
    names = {f"t_{name}": value for name, value in columns.items()}
    return qs.order_by().annotate(**names).values(*(f"t_{name}" for name in COLUMNS))


def _events(campaign: Campaign, since: datetime, now: datetime, kind: str) -> QuerySet:
    # An occurrence exactly as old as the send window is still in it ("older than this is no
    # longer acted on").
    qs = Event.objects.filter(kind=kind, occurred_at__gte=since, occurred_at__lte=now)
    if campaign.course_id:
        qs = qs.filter(course_id=campaign.course_id)
    return qs


def _event_rows(qs: QuerySet, detail: Any) -> QuerySet:
    return _rows(
        qs,
        learner_id=F("learner_id"),
        occurrence_key=_key("event", F("id")),
        occurred_at=F("occurred_at"),
        course_id=F("course_id"),
        detail=detail,
    )


def _final_module(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = _events(c, since, now, EventKind.MODULE_COMPLETED).filter(module__is_final=True)
    detail = Concat(Value("completed the final module of "), F("course__title"))
    return [_event_rows(qs, detail)]


def _assessment_high(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    unfinished = Enrollment.objects.filter(
        learner_id=OuterRef("learner_id"), course_id=OuterRef("course_id"), completed_at=None
    )
    qs = _events(c, since, now, EventKind.ASSESSMENT_SUBMITTED).filter(
        value__gte=p["min_score"], course__isnull=False
    )
    qs = qs.filter(Exists(unfinished))
    detail = Concat(
        Value("scored "),
        _text(Cast("value", IntegerField())),
        Value(" on an assessment mid-way through "),
        F("course__title"),
    )
    return [_event_rows(qs, detail)]


def _stall(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    from learners.scoring import STALL_ACTIVITY

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
        _rows(
            qs,
            learner_id=F("id"),
            # One occurrence per silence: keyed by the last login or learning before it (an
            # event of another kind during the silence made it a new occurrence: a second
            # email).
            occurrence_key=_key("stall", F("silent_since")),
            occurred_at=F("silent_since"),
            course_id=_no_course(),
            detail=Value("was active weekly, silent since their last visit"),
        )
    ]


QUOTES = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "}


def phrase_normal(text: str) -> str:
    """How phrases and questions are compared: straight quotes, lower case, single spaces."""
    for curly, straight in QUOTES.items():
        text = text.replace(curly, straight)
    return " ".join(text.lower().split())


def _normal_sql(expression: Any) -> Any:
    """``phrase_normal`` in SQL, portably: quotes straightened, lower case, tabs and line
    breaks as spaces, runs of up to eight spaces made one."""
    for curly, straight in QUOTES.items():
        expression = Replace(expression, Value(curly), Value(straight))
    for blank in ("\n", "\r", "\t"):
        expression = Replace(expression, Value(blank), Value(" "))
    for _ in range(3):
        expression = Replace(expression, Value("  "), Value(" "))
    return Lower(expression)


def _curriculum_exhausted(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    said = Q()
    for phrase in p["phrases"]:
        said |= Q(question__contains=phrase_normal(phrase))
    qs = (
        _events(c, since, now, EventKind.COMMUNITY_QUESTION)
        .annotate(question=_normal_sql(Cast(KT("properties__text"), CharField())))
        .filter(said)
    )
    detail = Value("asked in the community what to learn next")
    return [_event_rows(qs, detail)]


ROLE_ORDER = (AccountRole.ADMIN, AccountRole.BILLING_OWNER, AccountRole.MEMBER)


def _subscription_rows(
    c: Campaign, subs: QuerySet, key: Callable[[], Any], detail: Any
) -> list[QuerySet]:
    """Rows for the learner holding each subscription, and for an account's members: those
    of the roles the campaign addresses (``target_roles``; empty: every role), and with
    ``one_per_account`` only the first of them (admin, then billing owner, then member; then
    the oldest) — seed 004: "role-aware targeting so end-users aren't spammed with admin
    offers"."""
    own = _rows(
        subs.filter(learner__isnull=False),
        learner_id=F("learner_id"),
        occurrence_key=key(),
        occurred_at=F("updated_at"),
        course_id=_no_course(),
        detail=detail,
    )
    roles = list(c.target_roles or [])
    if roles:
        own = own.filter(learner__role__in=roles)
    members = Learner.objects.filter(account_id=OuterRef("account_id"))
    if roles:
        members = members.filter(role__in=roles)
    team_subs = subs.filter(account__isnull=False)
    if c.one_per_account:
        rank = Case(
            *(When(role=role, then=Value(n)) for n, role in enumerate(ROLE_ORDER)),
            default=Value(len(ROLE_ORDER)),
            output_field=IntegerField(),
        )
        first = members.annotate(rank=rank).order_by("rank", "id").values("id")[:1]
        team = _rows(
            team_subs,
            learner_id=Subquery(first),
            occurrence_key=key(),
            occurred_at=F("updated_at"),
            course_id=_no_course(),
            detail=detail,
        ).filter(t_learner_id__isnull=False)
    else:
        # One annotate, one join: filtering the members in a separate call joined them a
        # second time (a row per member per member).
        members_of = team_subs.annotate(
            member_id=F("account__learners__id"), member_role=F("account__learners__role")
        ).filter(member_id__isnull=False)
        if roles:
            members_of = members_of.filter(member_role__in=roles)
        team = _rows(
            members_of,
            learner_id=F("member_id"),
            occurrence_key=key(),
            occurred_at=F("updated_at"),
            course_id=_no_course(),
            detail=detail,
        )
    return [own, team]


def _usage_threshold(p: dict) -> Any:
    """The threshold a share (in percent) has crossed: the highest of ``thresholds`` it
    reaches, else ``percent``; NULL outside the band (below percent, above upto)."""
    steps = sorted(p["thresholds"] or [p["percent"]], reverse=True)
    inside = Q(share__gte=p["percent"])
    if p["upto"]:
        inside &= Q(share__lte=p["upto"])
    whens = [When(inside & Q(share__gte=step), then=Value(step)) for step in steps]
    return Case(*whens, default=None, output_field=IntegerField())


def _usage(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    """Usage at a share of the quota, from both sources: the subscription's quota fields and
    the platform's ``usage_reported`` events (properties ``used`` and ``limit``, and
    ``metric``). One occurrence per threshold crossed per billing period (subscriptions) or
    per metric and month (events)."""
    band = f"{p['percent']}–{p['upto']}%" if p["upto"] else f"{p['percent']}% or more"
    subs = (
        Subscription.objects.filter(status__in=LIVE, quota_limit__gt=0, updated_at__gte=since)
        .annotate(share=F("quota_used") * 100.0 / F("quota_limit"))
        .annotate(crossed=_usage_threshold(p))
        .filter(crossed__isnull=False)
    )
    # The share itself in the reason (the threshold crossed is in the occurrence key).
    detail = Concat(
        Value("used "),
        _text(Cast(F("share"), IntegerField())),
        Value(f"% of the plan's quota (band {band})"),
    )
    # One occurrence per threshold per billing period.
    period = Coalesce(_text(F("renews_at")), Value(""))
    rows = _subscription_rows(c, subs, lambda: _key("usage", F("id"), F("crossed"), period), detail)
    used = Cast(KT("properties__used"), FloatField())
    limit = Cast(KT("properties__limit"), FloatField())
    events = (
        _events(c, since, now, EventKind.USAGE_REPORTED)
        .annotate(used_n=used, limit_n=limit)
        .filter(limit_n__gt=0, used_n__isnull=False)
        .annotate(share=F("used_n") * 100.0 / F("limit_n"))
        .annotate(crossed=_usage_threshold(p))
        .filter(crossed__isnull=False)
    )
    metric = Coalesce(Cast(KT("properties__metric"), CharField()), Value(""))
    rows.append(
        _rows(
            events,
            learner_id=F("learner_id"),
            occurrence_key=_key("usage-reported", metric, F("crossed"), TruncMonth("occurred_at")),
            occurred_at=F("occurred_at"),
            course_id=_no_course(),
            detail=Concat(
                Value("reported "),
                _text(Cast(F("share"), IntegerField())),
                Value("% of their "),
                metric,
                Value(f" limit used (band {band})"),
            ),
        )
    )
    return rows


def _seats(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    subs = Subscription.objects.filter(
        status__in=LIVE, seats_limit__gt=0, updated_at__gte=since, seats_used__gte=F("seats_limit")
    )
    detail = Concat(Value("every seat in use ("), _text(F("seats_limit")), Value(")"))
    return _subscription_rows(c, subs, lambda: _key("seats", F("id"), F("seats_limit")), detail)


def _counted(
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
            t_course_id=_no_course(),
            t_detail=Concat(_text(F("n")), Value(f" {what} in {days} days")),
        )
        .order_by()
        .values(*(f"t_{name}" for name in COLUMNS))
    ]


def _rate_limited(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    week = now.strftime("%G-W%V")
    return _counted(
        c,
        p,
        now,
        EventKind.RATE_LIMITED,
        p["min_hits"],
        p["days"],
        f"ratelimit:{week}",
        "rate-limit hits",
    )


def _team_growth(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    return _counted(
        c,
        p,
        now,
        EventKind.SEAT_INVITED,
        p["min_invites"],
        p["days"],
        f"team:{now:%Y-%m}",
        "seat invitations",
    )


def _premium_feature(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = _events(c, since, now, EventKind.PREMIUM_FEATURE_ATTEMPTED)
    detail = Concat(
        Value("tried a premium feature "),
        Coalesce(Cast(F("properties__feature"), CharField()), Value("")),
    )
    return [_event_rows(qs, detail)]


def _integration(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = _events(c, since, now, EventKind.INTEGRATION_CONNECTED)
    return [_event_rows(qs, Value("connected an integration"))]


def _renewal(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    subs = Subscription.objects.filter(
        status__in=LIVE,
        renews_at__gte=now + timedelta(days=p["min_days"]),
        renews_at__lte=now + timedelta(days=p["max_days"]),
    )
    detail = Concat(Value("plan renews on "), _text(Cast("renews_at", DateTimeField())))
    return _subscription_rows(c, subs, lambda: _key("renewal", F("id"), F("renews_at")), detail)


def _after_purchase(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = Order.objects.filter(placed_at__gte=since, placed_at__lte=now)
    if p["sku"]:
        qs = qs.filter(lines__product__sku=p["sku"]).distinct()
    return [
        _rows(
            qs,
            learner_id=F("learner_id"),
            occurrence_key=_key("order", F("id")),
            occurred_at=F("placed_at"),
            course_id=_no_course(),
            detail=Value("just bought"),
        )
    ]


def _cross_sell(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = Enrollment.objects.filter(
        completed_at__gte=now - timedelta(days=p["max_days"]),
        completed_at__lte=now - timedelta(days=p["min_days"]),
    )
    if c.course_id:
        qs = qs.filter(course_id=c.course_id)
    return [
        _rows(
            qs,
            learner_id=F("learner_id"),
            occurrence_key=_key("xsell", F("id")),
            occurred_at=F("completed_at"),
            course_id=F("course_id"),
            detail=Concat(Value("completed "), F("course__title"), Value(" a few weeks ago")),
        )
    ]


def _segment_entry(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = SegmentMembership.objects.filter(
        segment_id=p["segment"], exited_at__isnull=True, entered_at__gte=since
    )
    return [
        _rows(
            qs,
            learner_id=F("learner_id"),
            occurrence_key=_key("segment", F("id")),
            occurred_at=F("entered_at"),
            course_id=_no_course(),
            detail=Concat(Value("joined the segment "), F("segment__name")),
        )
    ]


def _custom(c: Campaign, p: dict, since: datetime, now: datetime) -> list[QuerySet]:
    qs = _events(c, since, now, p["kind"])
    for name, value in sorted(p["properties"].items()):
        qs = qs.filter(**{f"properties__{name}": value})
    return [_event_rows(qs, Concat(Value("did "), F("kind")))]


BUILDERS: dict[str, Callable[[Campaign, dict, datetime, datetime], list[QuerySet]]] = {
    TriggerKind.FINAL_MODULE: _final_module,
    TriggerKind.ASSESSMENT_HIGH: _assessment_high,
    TriggerKind.STALL: _stall,
    TriggerKind.CURRICULUM_EXHAUSTED: _curriculum_exhausted,
    TriggerKind.USAGE_THRESHOLD: _usage,
    TriggerKind.SEAT_SATURATION: _seats,
    TriggerKind.RATE_LIMITED: _rate_limited,
    TriggerKind.PREMIUM_FEATURE: _premium_feature,
    TriggerKind.INTEGRATION: _integration,
    TriggerKind.TEAM_GROWTH: _team_growth,
    TriggerKind.RENEWAL: _renewal,
    TriggerKind.AFTER_PURCHASE: _after_purchase,
    TriggerKind.CROSS_SELL: _cross_sell,
    TriggerKind.SEGMENT_ENTRY: _segment_entry,
    TriggerKind.CUSTOM_EVENT: _custom,
}


def trigger_rows(campaign: Campaign, *, now: datetime) -> list[QuerySet]:
    """The querysets of this campaign's trigger occurrences inside its send window."""
    since = now - timedelta(hours=campaign.send_within_hours)
    return BUILDERS[campaign.trigger](campaign, params_for(campaign), since, now)
