"""Evaluating campaigns: trigger occurrences → guardrails → experiment arms → Send rows.

One evaluation is a fixed number of set-based statements per campaign and per guardrail,
whatever the number of learners:

1. each active campaign's trigger rows (``campaigns.triggers``), restricted to its audience
   segment and to occurrences it has not answered yet, go into ``Candidate`` (one
   ``INSERT … SELECT`` per trigger query);
2. a learner who triggers several campaigns at once gets their priority raised (seed 003);
3. the guardrails run in a fixed order, each one ``UPDATE`` that stamps its rule on the
   candidates it stops — so every stopped would-be send keeps the *first* rule that stopped it;
4. experiment arms are assigned (sticky; holdout learners are stopped with ``holdout``);
5. one offer per moment: the highest priority wins, the rest are ``superseded``;
6. quiet hours and frequency caps in each learner's own time zone (per zone, not per learner:
   the zone's next allowed time and its calendar day and week are computed once);
7. one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` writes every candidate as a Send — queued,
   or suppressed with its rule — under the one-send-per-occurrence unique constraint.

Evaluations take turns (a PostgreSQL advisory lock), so two workers can never both see room
under a frequency cap and both fill it (listmonk #2184 let 3 through a cap of 2).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from expansion.models import Order
from experiments.assignment import assign, bucket_sql, global_holdout_bucket_limit
from experiments.models import Assignment, Status
from learners.consent import reachable_q
from learners.models import (
    MARKETING_CATEGORIES,
    DirtyLearner,
    Event,
    EventKind,
    Learner,
    LearnerScore,
    SegmentMembership,
    Stage,
)
from templates.models import MessageTemplateVersion

from .models import (
    OVERRIDABLE,
    Campaign,
    CampaignStatus,
    Candidate,
    GuardrailPolicy,
    Reentry,
    Rule,
    Send,
    SendStatus,
    TriggerKind,
)
from .triggers import COLUMNS, trigger_rows

EVALUATION_LOCK = 0x43414D50  # "CAMP"
# Sends that count towards a frequency cap: everything that is, will be or was delivered
# (a dismissed in-app card was shown).
COUNTED = [
    SendStatus.QUEUED,
    SendStatus.SENDING,
    SendStatus.SENT,
    SendStatus.DELIVERED,
    SendStatus.OPENED,
    SendStatus.CLICKED,
    SendStatus.CONVERTED,
    SendStatus.DISMISSED,
]


@dataclass
class Evaluation:
    """What one evaluation did: candidates found, queued, and stopped by each rule."""

    candidates: int = 0
    queued: int = 0
    stopped: Counter = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)


def policy_for(campaign: Campaign, policy: GuardrailPolicy) -> dict[str, Any]:
    values = {name: getattr(policy, name) for name in OVERRIDABLE}
    values.update({k: v for k, v in (campaign.guardrails or {}).items() if k in OVERRIDABLE})
    return values


def campaigns_evaluate(
    *,
    now: datetime | None = None,
    campaigns: Iterable[Campaign] | None = None,
    dry_run: bool = False,
    sample: int = 0,
) -> Evaluation:
    """Evaluate ``campaigns`` (default: every active one) and write their sends.

    ``dry_run``: do everything, report, write nothing (the admin's "who would get it now").
    ``sample``: include up to this many would-be sends (learner, reason, rule) in the result.
    """
    now = now or timezone.now()
    chosen = list(
        campaigns
        if campaigns is not None
        else Campaign.objects.filter(status=CampaignStatus.ACTIVE).select_related("moment")
    )
    result = Evaluation()
    if not chosen:
        return result
    policy = GuardrailPolicy.load()
    run = uuid.uuid4()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK])
        candidates = Candidate.objects.filter(run=run)
        for campaign in chosen:
            _collect(run, campaign, now)
        result.candidates = candidates.count()
        if result.candidates:
            _boost(run, policy)
            _guardrails(run, chosen, policy, now)
            _experiments(run, chosen, now)
            _superseded(run)
            _timing_and_caps(run, chosen, policy, now)
            result.stopped = Counter(
                dict(
                    candidates.exclude(rule="")
                    .values_list("rule")
                    .annotate(n=Count("*"))
                    .values_list("rule", "n")
                )
            )
            result.queued = candidates.filter(rule="").count()
            if sample:
                result.sample = _sample(run, sample)
            if not dry_run:
                _write_sends(run, chosen, now)
        candidates.delete()
        if dry_run:
            transaction.set_rollback(True)
    return result


def _channel(campaign: Campaign) -> str:
    return "email" if campaign.email_template_id else "in_app"


def _collect(run: uuid.UUID, campaign: Campaign, now: datetime) -> None:
    """The campaign's trigger occurrences it has not answered yet, into Candidate."""
    channel = _channel(campaign)
    answered = Send.objects.filter(
        campaign_id=campaign.pk,
        learner_id=OuterRef("t_learner_id"),
        occurrence_key=OuterRef("t_occurrence_key"),
        channel=channel,
    )
    # A learner with data not scored yet is left for the next evaluation: their guardrails
    # (LPS, stage, flags) must be read from fresh scores, and the decision is final.
    waiting = DirtyLearner.objects.filter(learner_id=OuterRef("t_learner_id"))
    for rows in trigger_rows(campaign, now=now):
        rows = rows.filter(~Exists(answered), ~Exists(waiting))
        if campaign.segment_id:
            members = SegmentMembership.objects.filter(
                segment_id=campaign.segment_id, exited_at__isnull=True
            ).values("learner_id")
            rows = rows.filter(t_learner_id__in=members)
        sql, params = rows.query.sql_with_params()
        names = ", ".join(f"t.t_{name}" for name in COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO campaigns_candidate
                  (run, campaign_id, learner_id, occurrence_key, occurred_at, course_id, detail,
                   moment_id, channel, priority, rule)
                SELECT %s, %s, {names}, %s, %s, %s, ''
                FROM ({sql}) t WHERE t.t_learner_id IS NOT NULL
                ON CONFLICT DO NOTHING
                """,
                [_uuid(run), campaign.pk, campaign.moment_id, channel, campaign.priority, *params],
            )


def _uuid(value: uuid.UUID) -> Any:
    return value if connection.vendor == "postgresql" else value.hex


def _boost(run: uuid.UUID, policy: GuardrailPolicy) -> None:
    """Each further campaign a learner triggers in this evaluation adds to every priority."""
    if not policy.multi_trigger_boost:
        return
    # One grouped count joined once (a correlated count per row took 2.5 s for 10,000).
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_candidate SET priority = priority + %s * (b.n - 1)
            FROM (
              SELECT learner_id, COUNT(DISTINCT campaign_id) AS n FROM campaigns_candidate
              WHERE run = %s GROUP BY learner_id HAVING COUNT(DISTINCT campaign_id) > 1
            ) b
            WHERE campaigns_candidate.run = %s AND campaigns_candidate.learner_id = b.learner_id
            """,
            [policy.multi_trigger_boost, _uuid(run), _uuid(run)],
        )


def _stop(qs: Any, rule: str) -> None:
    qs.filter(rule="").update(rule=rule)


def _by_setting(
    run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy, name: str
) -> dict[Any, list[int]]:
    """Marketing campaigns of this run grouped by their effective value of one guardrail."""
    groups: dict[Any, list[int]] = {}
    for campaign in campaigns:
        if campaign.is_marketing:
            groups.setdefault(policy_for(campaign, policy)[name], []).append(campaign.pk)
    return groups


def _guardrails(
    run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> None:
    rows = Candidate.objects.filter(run=run)
    marketing = rows.filter(campaign__category__in=list(MARKETING_CATEGORIES))
    _stop(marketing.filter(moment__offers_allowed=False), Rule.OFFER_FREE_MOMENT)
    for category in {c.category for c in campaigns}:
        # A correlated EXISTS per candidate (an index probe each): as NOT IN over every
        # reachable learner, PostgreSQL rescanned the list per row once it outgrew work_mem —
        # minutes for 100,000 candidates among 1,000,000 learners (bench/dispatch.py).
        reachable = Learner.objects.filter(reachable_q(category), pk=OuterRef("learner_id"))
        _stop(
            rows.filter(campaign__category=category).filter(~Exists(reachable)),
            Rule.NOT_REACHABLE,
        )
    salt, limit = global_holdout_bucket_limit()
    categories = ", ".join(f"'{c}'" for c in list(MARKETING_CATEGORIES))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_candidate SET rule = %s
            WHERE run = %s AND rule = '' AND {bucket_sql("learner_id")} < %s
              AND campaign_id IN (
                SELECT id FROM campaigns_campaign WHERE category IN ({categories})
              )
            """,
            [Rule.GLOBAL_HOLDOUT, _uuid(run), salt, limit],
        )
    for campaign in campaigns:
        if campaign.reentry == Reentry.EVERY:
            continue
        earlier = Send.objects.filter(campaign_id=campaign.pk, learner_id=OuterRef("learner_id"))
        if campaign.reentry == Reentry.COOLDOWN:
            earlier = earlier.filter(created_at__gt=now - timedelta(days=campaign.reentry_days))
        _stop(rows.filter(campaign_id=campaign.pk).filter(Exists(earlier)), Rule.REENTRY)

    score = LearnerScore.objects.filter(learner_id=OuterRef("learner_id"))
    flags = (
        ("suppress_at_risk", Rule.AT_RISK, Q(stage=Stage.AT_RISK)),
        ("min_lps", Rule.LOW_LPS, None),
        ("suppress_open_ticket", Rule.OPEN_TICKET, Q(flag_open_ticket=True)),
        ("suppress_payment_failed", Rule.PAYMENT_FAILED, Q(flag_payment_failed=True)),
        ("suppress_refund", Rule.REFUND, Q(flag_refund=True)),
    )
    for name, rule, condition in flags:
        for value, ids in _by_setting(run, campaigns, policy, name).items():
            if not value:
                continue
            scoped = rows.filter(campaign_id__in=ids)
            if condition is None:  # LPS: below the minimum, or never scored
                ok = score.filter(lps__gte=value)
                _stop(scoped.filter(~Exists(ok)), rule)
            else:
                _stop(scoped.filter(Exists(score.filter(condition))), rule)
    for days, ids in _by_setting(run, campaigns, policy, "declined_days").items():
        if days:
            declined = Event.objects.filter(
                learner_id=OuterRef("learner_id"),
                kind=EventKind.OFFER_DECLINED,
                occurred_at__gt=now - timedelta(days=days),
                occurred_at__lte=now,
            )
            _stop(rows.filter(campaign_id__in=ids).filter(Exists(declined)), Rule.DECLINED)
    for days, ids in _by_setting(run, campaigns, policy, "bought_days").items():
        if days:
            bought = Order.objects.filter(
                learner_id=OuterRef("learner_id"),
                placed_at__gt=now - timedelta(days=days),
                placed_at__lte=now,
            )
            # The one-click upsell right after a purchase is the point of that trigger.
            scoped = rows.filter(campaign_id__in=ids).exclude(
                campaign__trigger=TriggerKind.AFTER_PURCHASE
            )
            _stop(scoped.filter(Exists(bought)), Rule.BOUGHT)
    for days, ids in _by_setting(run, campaigns, policy, "onboarding_days").items():
        if days:
            new = Learner.objects.filter(
                pk=OuterRef("learner_id"), created_at__gt=now - timedelta(days=days)
            )
            scoped = rows.filter(campaign_id__in=ids, campaign__premium_upsell=True)
            _stop(scoped.filter(Exists(new)), Rule.ONBOARDING)


def _experiments(run: uuid.UUID, campaigns: list[Campaign], now: datetime) -> None:
    """Assign the still-eligible learners of experimenting campaigns; stop the holdout."""
    rows = Candidate.objects.filter(run=run, rule="")
    for campaign in campaigns:
        experiment = campaign.experiment
        if experiment is None or experiment.status != Status.RUNNING:
            continue
        mine = rows.filter(campaign_id=campaign.pk)
        assign(
            experiment=experiment,
            learners=Learner.objects.filter(id__in=mine.values("learner_id")),
            now=now,
        )
        held = Assignment.objects.filter(
            experiment=experiment, arm__isnull=True, learner_id=OuterRef("learner_id")
        )
        _stop(mine.filter(Exists(held)), Rule.HOLDOUT)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE campaigns_candidate SET arm_id = (
                  SELECT a.arm_id FROM experiments_assignment a
                  WHERE a.experiment_id = %s AND a.learner_id = campaigns_candidate.learner_id
                )
                WHERE run = %s AND campaign_id = %s AND rule = ''
                """,
                [experiment.pk, _uuid(run), campaign.pk],
            )


def _superseded(run: uuid.UUID) -> None:
    """One offer per learner per moment: the highest priority (then the oldest campaign)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_candidate SET rule = %s WHERE id IN (
              SELECT id FROM (
                SELECT id, ROW_NUMBER() OVER (
                  PARTITION BY learner_id, moment_id, channel
                  ORDER BY priority DESC, campaign_id, occurred_at DESC, id
                ) AS place
                FROM campaigns_candidate WHERE run = %s AND rule = ''
              ) ranked WHERE place > 1
            )
            """,
            [Rule.SUPERSEDED, _uuid(run)],
        )


@dataclass(frozen=True)
class ZoneClock:
    """For one time zone: when a message due now may go, and that local day's and week's
    bounds (UTC)."""

    send_at: datetime
    day_start: datetime
    day_end: datetime
    week_start: datetime
    week_end: datetime


def zone_clock(zone: str, now: datetime, quiet_start: time, quiet_end: time) -> ZoneClock:
    """Quiet hours hold in the learner's zone: a send due inside them waits for their end."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    send_local = local
    clock = local.time()
    if quiet_start != quiet_end:
        wraps = quiet_start > quiet_end  # e.g. 21:00 → 08:00
        inside = (
            (clock >= quiet_start or clock < quiet_end)
            if wraps
            else quiet_start <= clock < quiet_end
        )
        if inside:
            day: date = local.date()
            if wraps and clock >= quiet_start:
                day = day + timedelta(days=1)
            send_local = datetime.combine(day, quiet_end, tzinfo=tz)
    day_start = datetime.combine(send_local.date(), time(0), tzinfo=tz)
    day_end = datetime.combine(send_local.date() + timedelta(days=1), time(0), tzinfo=tz)
    monday = send_local.date() - timedelta(days=send_local.weekday())
    week_start = datetime.combine(monday, time(0), tzinfo=tz)
    week_end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    utc = [
        value.astimezone(ZoneInfo("UTC"))
        for value in (send_local, day_start, day_end, week_start, week_end)
    ]
    return ZoneClock(*utc)


def _zone_case(column: str, clocks: dict[str, ZoneClock], attr: str, params: list) -> str:
    """CASE <learner's zone> WHEN … THEN <that zone's value> END, as SQL with parameters."""
    whens = []
    for zone, clock in clocks.items():
        whens.append("WHEN %s THEN %s")
        params.extend([zone, connection.ops.adapt_datetimefield_value(getattr(clock, attr))])
    return f"(CASE {column} {' '.join(whens)} END)"


def _timing_and_caps(
    run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> None:
    """Quiet hours, then the frequency caps (email: rolling, calendar day and week; in-app:
    calendar day), each in the learner's own time zone.

    A candidate passes a cap if the learner's counted sends in the window plus its place
    among the learner's surviving candidates of this evaluation (by priority) stay within it.
    In-app offers keep no quiet hours: they are shown when the learner is in the app.
    """
    zones = set(
        Learner.objects.filter(
            id__in=Candidate.objects.filter(run=run, rule="").values("learner_id")
        )
        .order_by()
        .values_list("time_zone", flat=True)
        .distinct()
    )
    if not zones:
        return
    email_clocks = {z: zone_clock(z, now, policy.quiet_start, policy.quiet_end) for z in zones}
    in_app_clocks = {z: zone_clock(z, now, policy.quiet_start, policy.quiet_start) for z in zones}
    params: list[Any] = []
    send_at = _zone_case("l.time_zone", email_clocks, "send_at", params)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_candidate SET scheduled_for = CASE WHEN channel = 'email' THEN (
              SELECT {send_at} FROM learners_learner l
              WHERE l.id = campaigns_candidate.learner_id
            ) ELSE %s END
            WHERE run = %s AND rule = ''
            """,
            [*params, connection.ops.adapt_datetimefield_value(now), _uuid(run)],
        )
    email_caps: dict[int, dict[str, int]] = {}
    in_app_caps: dict[int, dict[str, int]] = {}
    for campaign in campaigns:
        if not campaign.is_marketing:
            continue  # transactional messages are exempt
        values = policy_for(campaign, policy)
        if _channel(campaign) == "email":
            email_caps[campaign.pk] = {
                "rolling": values["email_cap"],
                "days": values["cap_window_days"],
                "day": values["email_cap_day"],
                "week": values["email_cap_week"],
            }
        else:
            in_app_caps[campaign.pk] = {
                "rolling": 0,
                "days": 1,
                "day": policy.in_app_cap_day,
                "week": 0,
            }
    _caps(run, "email", email_caps, email_clocks)
    _caps(run, "in_app", in_app_caps, in_app_clocks)


def _caps(
    run: uuid.UUID, channel: str, caps: dict[int, dict[str, int]], clocks: dict[str, ZoneClock]
) -> None:
    if not caps:
        return

    def per_campaign(key: str) -> str:
        # A cap of 0 means "no cap".
        whens = " ".join(f"WHEN {pk} THEN {value[key] or 1_000_000}" for pk, value in caps.items())
        return f"(CASE c.campaign_id {whens} END)"

    counted = ", ".join(f"'{status}'" for status in COUNTED)
    marketing = ", ".join(f"'{c}'" for c in list(MARKETING_CATEGORIES))
    when = "COALESCE(s.scheduled_for, s.created_at)"
    sent = f"""
        SELECT COUNT(*) FROM campaigns_send s
        WHERE s.learner_id = c.learner_id AND s.channel = %s
          AND s.status IN ({counted}) AND s.category IN ({marketing})
    """
    # Each campaign's rolling window, as rows to join (its length may be overridden).
    windows = " UNION ALL ".join(
        f"SELECT {pk} AS campaign_id, {value['days']} AS days" for pk, value in caps.items()
    )
    if connection.vendor == "postgresql":
        rolling = (
            f"AND {when} > c.scheduled_for - make_interval(days => cw.days) "
            f"AND {when} <= c.scheduled_for"
        )
    else:
        rolling = (
            f"AND julianday({when}) > julianday(c.scheduled_for) - cw.days "
            f"AND julianday({when}) <= julianday(c.scheduled_for)"
        )
    checks: list[tuple[str, str, str, list[Any]]] = []
    if any(value["rolling"] for value in caps.values()):
        checks.append((Rule.CAP_ROLLING, per_campaign("rolling"), rolling, []))
    calendar: tuple[tuple[str, str], ...] = ((Rule.CAP_DAY, "day"), (Rule.CAP_WEEK, "week"))
    for rule, period in calendar:
        if not any(value[period] for value in caps.values()):
            continue
        zone_params: list[Any] = []
        lower = _zone_case("l.time_zone", clocks, f"{period}_start", zone_params)
        upper = _zone_case("l.time_zone", clocks, f"{period}_end", zone_params)
        checks.append(
            (rule, per_campaign(period), f"AND {when} >= {lower} AND {when} < {upper}", zone_params)
        )
    ids = ", ".join(str(pk) for pk in caps)
    with connection.cursor() as cursor:
        for cap_rule, limit, bounds, bound_params in checks:
            cursor.execute(
                f"""
                UPDATE campaigns_candidate SET rule = %s WHERE id IN (
                  SELECT id FROM (
                    SELECT c.id, {limit} AS cap,
                      ROW_NUMBER() OVER (
                        PARTITION BY c.learner_id ORDER BY c.priority DESC, c.campaign_id, c.id
                      ) AS place,
                      ({sent} {bounds}) AS already
                    FROM campaigns_candidate c
                    JOIN learners_learner l ON l.id = c.learner_id
                    JOIN ({windows}) cw ON cw.campaign_id = c.campaign_id
                    WHERE c.run = %s AND c.rule = '' AND c.channel = %s
                      AND c.campaign_id IN ({ids})
                  ) ranked WHERE already + place > cap
                )
                """,
                [cap_rule, channel, *bound_params, _uuid(run), channel],
            )


def _sample(run: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    rows = (
        Candidate.objects.filter(run=run)
        .select_related("learner", "campaign")
        .order_by("rule", "-priority", "learner_id")[:limit]
    )
    return [
        {
            "learner": row.learner.external_id,
            "campaign": row.campaign.name,
            "detail": row.detail,
            "rule": row.rule,
            "scheduled_for": row.scheduled_for,
        }
        for row in rows
    ]


def _write_sends(run: uuid.UUID, campaigns: list[Campaign], now: datetime) -> None:
    """Every candidate becomes a Send: queued, or suppressed with its rule."""
    versions: dict[int, int] = {}
    for campaign in campaigns:
        template_id = campaign.email_template_id or campaign.in_app_template_id
        latest = (
            MessageTemplateVersion.objects.filter(template_id=template_id)
            .order_by("-number")
            .values_list("id", flat=True)
            .first()
        )
        if latest is not None:
            versions[campaign.pk] = latest
    if not versions:
        return
    version_case = " ".join(f"WHEN {pk} THEN {vid}" for pk, vid in versions.items())
    triggers = " ".join(f"WHEN {c.pk} THEN '{c.trigger}'" for c in campaigns)
    offers = " ".join(f"WHEN {c.pk} THEN {c.offer_id}" for c in campaigns if c.offer_id)
    categories = " ".join(f"WHEN {c.pk} THEN '{c.category}'" for c in campaigns)
    labels = dict(Rule.choices)
    rule_text = " ".join("WHEN %s THEN %s" for _ in labels)
    rule_params = [value for pair in labels.items() for value in pair]
    stamp = connection.ops.adapt_datetimefield_value(now)
    lps = "CAST(CAST(ROUND(sc.lps) AS INTEGER) AS TEXT)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO campaigns_send
              (learner_id, campaign_id, occurrence_key, trigger, moment_id, arm_id, offer_id,
               course_id, reason, rule, priority, scheduled_for, channel, category,
               template_version_id, locale, to_email, subject, status, status_reason, attempts,
               is_test, message_id, provider_message_id, created_at, clicks, dismiss_reason)
            SELECT c.learner_id, c.campaign_id, c.occurrence_key,
              CASE c.campaign_id {triggers} END, c.moment_id, c.arm_id,
              COALESCE(a.offer_id, {f"CASE c.campaign_id {offers} END" if offers else "NULL"}),
              c.course_id,
              SUBSTR(c.detail || COALESCE('; LPS ' || {lps}, ''), 1, 500),
              c.rule, c.priority, c.scheduled_for, c.channel, CASE c.campaign_id {categories} END,
              CASE c.campaign_id {version_case} END, l.locale, l.email, '',
              CASE WHEN c.rule = '' THEN 'queued' ELSE 'suppressed' END,
              CASE c.rule {rule_text} ELSE '' END, 0, %s, '', '', %s, 0, ''
            FROM campaigns_candidate c
            JOIN learners_learner l ON l.id = c.learner_id
            LEFT JOIN learners_learnerscore sc ON sc.learner_id = c.learner_id
            LEFT JOIN experiments_arm a ON a.id = c.arm_id
            WHERE c.run = %s AND c.campaign_id IN ({", ".join(str(pk) for pk in versions)})
            ON CONFLICT DO NOTHING
            """,
            [*rule_params, False, stamp, _uuid(run)],
        )
