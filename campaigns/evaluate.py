"""Evaluating campaigns: trigger occurrences → guardrails → experiment arms → Send rows.

One evaluation is a fixed number of set-based statements per campaign and per guardrail,
whatever the number of learners:

1. each active campaign's trigger rows (``campaigns.triggers``), restricted to its audience
   segment and to occurrences it has not answered yet, go into ``Candidate`` (one
   ``INSERT … SELECT`` per trigger query), each with the time it may go: now, or the end of
   quiet hours in the learner's own time zone (every zone's clock is computed once, in
   Python, into a temporary table the statements join);
2. a learner who triggers several campaigns at once gets their priority raised (seed 003);
3. the guardrails, in a fixed order, as one ``UPDATE`` whose CASE stamps on each stopped
   candidate the *first* rule that stops it (``guardrail_checks``);
4. experiment arms are assigned (sticky; holdout learners are stopped with ``holdout``);
5. one offer per moment: the highest priority wins, the rest are ``superseded``;
6. frequency caps per channel — rolling, and calendar day and week in the learner's zone;
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
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from expansion.commerce.models import Order, OrderLine
from experiments.assignment import assign, bucket_sql, global_holdout_bucket_limit
from experiments.models import Assignment, Status
from learners.consent import reachable_q
from learners.models import (
    MARKETING_CATEGORIES,
    DirtyLearner,
    Enrollment,
    Event,
    EventKind,
    Learner,
    LearnerScore,
    RfmSegment,
    SegmentMembership,
    Stage,
    available_time_zones,
)
from learners.scoring import StepTimer

from .decisions import decisions_apply
from .guardrails import policy_for
from .lifecycle import campaign_versions, campaigns_back_to_review
from .models import (
    Campaign,
    CampaignStatus,
    Candidate,
    GuardrailPolicy,
    Purpose,
    Reentry,
    Rule,
    Send,
    SendStatus,
    TriggerKind,
)
from .quiet_hours import local_instant, quiet_until
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
    timings: dict[str, float] = field(default_factory=dict)


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
        else Campaign.objects.filter(status=CampaignStatus.ACTIVE).select_related(
            "moment", "experiment"
        )
    )
    if not dry_run:
        chosen = decisions_apply(campaigns=chosen)
        # What was approved is what goes out: a campaign changed since (or never approved)
        # goes back to review before it is evaluated.
        if campaigns_back_to_review(now=now):
            chosen = [c for c in chosen if c.pk in _still_active(chosen)]
    result = Evaluation()
    if not chosen:
        return result
    policy = GuardrailPolicy.load()
    run = uuid.uuid4()
    timer = StepTimer()
    result.timings = timer.timings
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK])
                # The commit need not wait for its WAL flush (0.27 s for 10,000 sends,
                # bench/dispatch.py). Nothing leaves on an evaluation's word alone: a send is
                # delivered only after a dispatcher's own commit (synchronous) claims it, and
                # a WAL flush is up to a position, so it makes this commit durable first. A
                # crash that loses this commit loses only sends that nobody acted on; the
                # next evaluation finds the same occurrences and writes them again.
                cursor.execute("SET LOCAL synchronous_commit = off")
                # As in scoring passes: compiling these large statements costs more than it
                # saves on this many rows.
                cursor.execute("SET LOCAL jit = off")
        candidates = Candidate.objects.filter(run=run)
        _zone_table(now, policy)
        timer.lap("zones")
        for campaign in chosen:
            _collect(run, campaign, now)
        result.candidates = candidates.count()
        timer.lap("collect")
        if result.candidates:
            if len(chosen) > 1:  # one campaign: nobody triggers several
                _boost(run, policy)
            timer.lap("boost")
            _guardrails(run, chosen, policy, now)
            timer.lap("guardrails")
            _experiments(run, chosen, now)
            _inactive_offers(run)
            timer.lap("experiments")
            _superseded(run)
            timer.lap("superseded")
            _timing_and_caps(run, chosen, policy, now)
            timer.lap("caps")
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
            timer.lap("report")
            if not dry_run:
                _write_sends(run, chosen, now, dry_run=dry_run)
                timer.lap("sends")
        candidates.delete()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {ZONE_TABLE}")
        timer.lap("cleanup")
        if dry_run:
            transaction.set_rollback(True)
    timer.lap("commit")
    return result


def _still_active(campaigns: list[Campaign]) -> set[int]:
    return set(
        Campaign.objects.filter(
            pk__in=[c.pk for c in campaigns], status=CampaignStatus.ACTIVE
        ).values_list("pk", flat=True)
    )


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
        # When it may go: now, or the end of quiet hours in the learner's zone (the zone
        # table's row; an unknown zone keeps UTC's).
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO campaigns_candidate
                  (run, campaign_id, learner_id, occurrence_key, occurred_at, course_id, detail,
                   moment_id, channel, priority, rule, scheduled_for)
                SELECT %s, %s, {names}, %s, %s, %s, '', COALESCE(z.send_at, u.send_at)
                FROM ({sql}) t
                JOIN learners_learner l ON l.id = t.t_learner_id
                LEFT JOIN {ZONE_TABLE} z ON z.zone = l.time_zone AND z.channel = %s
                JOIN {ZONE_TABLE} u ON u.zone = 'UTC' AND u.channel = %s
                ON CONFLICT DO NOTHING
                """,
                [
                    _uuid(run),
                    campaign.pk,
                    campaign.moment_id,
                    channel,
                    campaign.priority,
                    *params,
                    channel,
                    channel,
                ],
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
    campaigns: list[Campaign], policy: GuardrailPolicy, name: str, *, upsell_only: bool = False
) -> dict[Any, list[int]]:
    """Marketing campaigns of this run grouped by their effective value of one guardrail;
    ``upsell_only``: only the upsell and cross-sell ones (the rules that keep offers away
    from learners who need re-engagement instead never stop a re-engagement campaign)."""
    groups: dict[Any, list[int]] = {}
    for campaign in campaigns:
        if campaign.is_marketing and (not upsell_only or campaign.is_upsell):
            groups.setdefault(policy_for(campaign, policy)[name], []).append(campaign.pk)
    return groups


def onboarding_start() -> Any:
    """When a learner's onboarding began: their synced sign-up, else their first enrolment,
    else when Expansion first stored them — as the lifecycle stage reads it (an import of a
    two-year-old learner is not onboarding)."""
    first = (
        Enrollment.objects.filter(learner_id=OuterRef("pk"))
        .order_by()
        .values("learner_id")
        .annotate(first=Min("enrolled_at"))
        .values("first")
    )
    return Coalesce("signed_up_at", Subquery(first), "created_at")


def guardrail_checks(
    campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> list[tuple[str, Q]]:
    """The guardrails, in the order they are applied: (rule, when a candidate is stopped).

    Conditions on a ``Candidate`` row; the first that holds is the rule stored on its send.
    """
    marketing = Q(campaign__category__in=list(MARKETING_CATEGORIES))
    # An offer-free moment ("at risk: re-engage, never upsell") keeps offers out, not the
    # re-engagement it is for.
    checks: list[tuple[str, Q]] = [
        (
            Rule.OFFER_FREE_MOMENT,
            marketing & Q(campaign__purpose=Purpose.UPSELL, moment__offers_allowed=False),
        )
    ]
    for category in sorted({c.category for c in campaigns}):
        # A correlated EXISTS per candidate (an index probe each): as NOT IN over every
        # reachable learner, PostgreSQL rescanned the list per row once it outgrew work_mem —
        # minutes for 100,000 candidates among 1,000,000 learners (bench/dispatch.py).
        reachable = Learner.objects.filter(reachable_q(category), pk=OuterRef("learner_id"))
        checks.append((Rule.NOT_REACHABLE, Q(campaign__category=category) & ~Q(Exists(reachable))))
    salt, limit = global_holdout_bucket_limit()
    held_out = RawSQL(
        f"{bucket_sql(connection.ops.quote_name(Candidate._meta.db_table) + '.learner_id')} < %s",
        [salt, limit],
        output_field=BooleanField(),
    )
    checks.append((Rule.GLOBAL_HOLDOUT, marketing & Q(held_out)))
    for campaign in campaigns:
        if campaign.reentry == Reentry.EVERY:
            continue
        earlier = Send.objects.filter(campaign_id=campaign.pk, learner_id=OuterRef("learner_id"))
        if campaign.reentry == Reentry.COOLDOWN:
            earlier = earlier.filter(created_at__gt=now - timedelta(days=campaign.reentry_days))
        checks.append((Rule.REENTRY, Q(campaign_id=campaign.pk) & Q(Exists(earlier))))

    score = LearnerScore.objects.filter(learner_id=OuterRef("learner_id"))
    # (setting, rule, condition, upsell only): at risk and low LPS stop offers, never the
    # re-engagement those learners need (seeds 000 and 003).
    flags = (
        ("suppress_at_risk", Rule.AT_RISK, Q(stage=Stage.AT_RISK), True),
        ("min_lps", Rule.LOW_LPS, None, True),
        ("suppress_open_ticket", Rule.OPEN_TICKET, Q(flag_open_ticket=True), False),
        ("suppress_payment_failed", Rule.PAYMENT_FAILED, Q(flag_payment_failed=True), False),
        ("suppress_refund", Rule.REFUND, Q(flag_refund=True), False),
    )
    for name, rule, condition, upsell_only in flags:
        for value, ids in _by_setting(campaigns, policy, name, upsell_only=upsell_only).items():
            if not value:
                continue
            if condition is None:  # LPS: below the minimum, or never scored
                stopped = ~Q(Exists(score.filter(lps__gte=value)))
            else:
                stopped = Q(Exists(score.filter(condition)))
            checks.append((rule, Q(campaign_id__in=ids) & stopped))
    upsells = [c.pk for c in campaigns if c.is_marketing and c.is_upsell]
    if upsells:
        # Seed 001: recently churned (1-1-x) and at-risk previously valuable (1-4-5) cells get
        # no offer — whatever cells the marketer marks do-not-pitch (RFM segments admin).
        silenced = RfmSegment.objects.filter(do_not_pitch=True).values("name")
        checks.append(
            (
                Rule.RFM_DO_NOT_PITCH,
                Q(campaign_id__in=upsells) & Q(Exists(score.filter(rfm_segment__in=silenced))),
            )
        )
        # An offer of a product the learner already has.
        owned = OrderLine.objects.filter(
            order__learner_id=OuterRef("learner_id"),
            product_id=OuterRef("campaign__offer__product_id"),
        )
        checks.append((Rule.OWNS_PRODUCT, Q(campaign_id__in=upsells) & Q(Exists(owned))))
    for days, ids in _by_setting(campaigns, policy, "declined_days", upsell_only=True).items():
        if days:
            declined = Event.objects.filter(
                learner_id=OuterRef("learner_id"),
                kind=EventKind.OFFER_DECLINED,
                occurred_at__gt=now - timedelta(days=days),
                occurred_at__lte=now,
            )
            checks.append((Rule.DECLINED, Q(campaign_id__in=ids) & Q(Exists(declined))))
    for days, ids in _by_setting(campaigns, policy, "bought_days", upsell_only=True).items():
        if days:
            bought = Order.objects.filter(
                learner_id=OuterRef("learner_id"),
                placed_at__gt=now - timedelta(days=days),
                placed_at__lte=now,
            )
            # The one-click upsell right after a purchase is the point of that trigger.
            checks.append(
                (
                    Rule.BOUGHT,
                    Q(campaign_id__in=ids)
                    & ~Q(campaign__trigger=TriggerKind.AFTER_PURCHASE)
                    & Q(Exists(bought)),
                )
            )
    for days, ids in _by_setting(campaigns, policy, "onboarding_days", upsell_only=True).items():
        if days:
            new = Learner.objects.annotate(started=onboarding_start()).filter(
                pk=OuterRef("learner_id"), started__gt=now - timedelta(days=days)
            )
            checks.append(
                (
                    Rule.ONBOARDING,
                    Q(campaign_id__in=ids, campaign__premium_upsell=True) & Q(Exists(new)),
                )
            )
    return checks


def _guardrails(
    run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> None:
    """Every guardrail in one statement: each candidate's first stopping rule, as one CASE
    (evaluated in order, stopping at the first that holds), written to the stopped rows only.

    One pass over the candidates instead of one ``UPDATE`` per guardrail: 14 statements took
    2.6 s for 100,000 candidates (bench/dispatch.py).
    """
    checks = guardrail_checks(campaigns, policy, now)
    verdicts = (
        Candidate.objects.filter(run=run, rule="")
        .annotate(
            stop=Case(
                *(When(condition, then=Value(rule)) for rule, condition in checks),
                default=Value(""),
                output_field=CharField(),
            )
        )
        .values("id", "stop")
    )
    sql, params = verdicts.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_candidate SET rule = v.stop FROM ({sql}) v
            WHERE campaigns_candidate.id = v.id AND v.stop <> ''
            """,
            params,
        )


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


def _inactive_offers(run: uuid.UUID) -> None:
    """A candidate whose offer — its experiment arm's while the arm is active, else its
    campaign's (a decision retires the losing arms and gives the campaign the winner's) — is
    inactive is stopped: nothing is sent with a switched-off offer."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_candidate SET rule = %s WHERE id IN (
              SELECT c.id FROM campaigns_candidate c
              JOIN campaigns_campaign cc ON cc.id = c.campaign_id
              LEFT JOIN experiments_arm a ON a.id = c.arm_id
              JOIN expansion_offer o
                ON o.id = COALESCE(CASE WHEN a.is_active THEN a.offer_id END, cc.offer_id)
              WHERE c.run = %s AND c.rule = '' AND NOT o.is_active
            )
            """,
            [Rule.OFFER_INACTIVE, _uuid(run)],
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
    """Quiet hours hold in the learner's zone: a send due inside them waits for their end
    (the first valid local instant, daylight-saving transitions included:
    ``campaigns.quiet_hours``)."""
    tz = ZoneInfo(zone)
    send_at = quiet_until(zone, now, quiet_start, quiet_end) or now
    send_local = send_at.astimezone(tz)

    def midnight(day: date) -> datetime:
        return local_instant(tz, datetime.combine(day, time(0)), not_before=MIN_UTC)

    monday = send_local.date() - timedelta(days=send_local.weekday())
    return ZoneClock(
        send_at.astimezone(UTC),
        midnight(send_local.date()),
        midnight(send_local.date() + timedelta(days=1)),
        midnight(monday),
        midnight(monday + timedelta(days=7)),
    )


MIN_UTC = datetime(1970, 1, 1, tzinfo=UTC)


ZONE_TABLE = "evaluation_zone"


def _zone_table(now: datetime, policy: GuardrailPolicy) -> None:
    """Every time zone's clock for this evaluation, as a temporary table to join.

    One row per zone and channel: when a message due now may go (email waits for the end of
    quiet hours; in-app offers keep none, they are shown while the learner is in the app) and
    the bounds of that moment's local day and week. Computed here for every zone a learner
    can have (~600, a few ms) rather than per learner.
    """
    adapt = connection.ops.adapt_datetimefield_value
    rows = []
    for zone in sorted(available_time_zones()):
        for channel, quiet_end in (("email", policy.quiet_end), ("in_app", policy.quiet_start)):
            clock = zone_clock(zone, now, policy.quiet_start, quiet_end)
            rows.append(
                (
                    zone,
                    channel,
                    *(
                        adapt(value)
                        for value in (
                            clock.send_at,
                            clock.day_start,
                            clock.day_end,
                            clock.week_start,
                            clock.week_end,
                        )
                    ),
                )
            )
    stamp = connection.data_types["DateTimeField"]
    columns = ", ".join(
        f"{name} {stamp}" for name in ("send_at", "day_start", "day_end", "week_start", "week_end")
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {ZONE_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {ZONE_TABLE} (zone varchar(64), channel varchar(10), "
            f"{columns}, PRIMARY KEY (zone, channel))"
        )
        cursor.executemany(f"INSERT INTO {ZONE_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)


def _timing_and_caps(
    run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> None:
    """The frequency caps (email: rolling, calendar day and week; in-app: calendar day), each
    in the learner's own time zone; quiet hours were applied when the candidates were
    collected (``scheduled_for``).

    A candidate passes a cap if the learner's counted sends in the window plus its place
    among the learner's surviving candidates of this evaluation (by priority) stay within it.
    """
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
    _caps(run, "email", email_caps)
    _caps(run, "in_app", in_app_caps)


def _caps(run: uuid.UUID, channel: str, caps: dict[int, dict[str, int]]) -> None:
    if not caps:
        return

    def per_campaign(key: str) -> str:
        # A cap of 0 means "no cap".
        whens = " ".join(f"WHEN {pk} THEN {value[key] or 1_000_000}" for pk, value in caps.items())
        return f"(CASE c.campaign_id {whens} END)"

    counted = ", ".join(f"'{status}'" for status in COUNTED)
    marketing = ", ".join(f"'{c}'" for c in list(MARKETING_CATEGORIES))
    when = "COALESCE(s.scheduled_for, s.created_at)"
    sends = f"""
        FROM campaigns_send s
        WHERE s.learner_id = c.learner_id AND s.channel = %s
          AND s.status IN ({counted}) AND s.category IN ({marketing}) AND NOT s.is_test
    """
    # Each campaign's rolling window, as rows to join (its length may be overridden). A send
    # counts if it lies within the window's length on either side of the candidate's time:
    # one queued for later (a retry, a send waiting for the end of quiet hours) shares a
    # window with this one as surely as one sent before.
    windows = " UNION ALL ".join(
        f"SELECT {pk} AS campaign_id, {value['days']} AS days" for pk, value in caps.items()
    )
    if connection.vendor == "postgresql":
        rolling = (
            f"AND {when} > c.scheduled_for - make_interval(days => cw.days) "
            f"AND {when} < c.scheduled_for + make_interval(days => cw.days)"
        )
    else:
        rolling = (
            f"AND julianday({when}) > julianday(c.scheduled_for) - cw.days "
            f"AND julianday({when}) < julianday(c.scheduled_for) + cw.days"
        )
    calendar = {
        period: f"AND {when} >= COALESCE(z.{period}_start, u.{period}_start) "
        f"AND {when} < COALESCE(z.{period}_end, u.{period}_end)"
        for period in ("day", "week")
    }
    windows_sql = {"rolling": rolling, **calendar}
    if connection.vendor == "postgresql":
        # One index probe per candidate counts all three windows (three correlated counts
        # took 1.2 s for 100,000 candidates with a send history, bench/dispatch.py).
        already = {name: f"a.already_{name}" for name in ("rolling", "day", "week")}
        counts = ", ".join(
            f"COUNT(*) FILTER (WHERE 1 = 1 {window}) AS already_{name}"
            for name, window in windows_sql.items()
        )
        lateral = f"CROSS JOIN LATERAL (SELECT {counts} {sends}) a"
        sent_params = [channel]
    else:
        already = {
            name: f"(SELECT COUNT(*) {sends} {window})" for name, window in windows_sql.items()
        }
        lateral = ""
        sent_params = [channel, channel, channel]
    # The caps apply in order — rolling, day, week — each to the candidates the ones before
    # let through: a candidate's place under a cap is the running count of the learner's
    # candidates (by priority) still standing, so one statement does what three sequential
    # updates did (0.5 s each for 100,000 candidates, bench/dispatch.py).
    order = "PARTITION BY learner_id ORDER BY priority DESC, campaign_id, id"
    ids = ", ".join(str(pk) for pk in caps)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_candidate SET rule = r.stop FROM (
              SELECT id, CASE WHEN s1 = 1 THEN %s WHEN s2 = 1 THEN %s WHEN s3 = 1 THEN %s
                END AS stop
              FROM (
                SELECT k2.*, CASE WHEN s1 = 0 AND s2 = 0 AND already_week + SUM(
                    CASE WHEN s1 = 0 AND s2 = 0 THEN 1 ELSE 0 END) OVER ({order}) > cap_week
                  THEN 1 ELSE 0 END AS s3
                FROM (
                  SELECT k1.*, CASE WHEN s1 = 0 AND already_day + SUM(
                      CASE WHEN s1 = 0 THEN 1 ELSE 0 END) OVER ({order}) > cap_day
                    THEN 1 ELSE 0 END AS s2
                  FROM (
                    SELECT k0.*, CASE WHEN already_rolling + ROW_NUMBER() OVER ({order})
                        > cap_rolling THEN 1 ELSE 0 END AS s1
                    FROM (
                      SELECT c.id, c.learner_id, c.priority, c.campaign_id,
                        {per_campaign("rolling")} AS cap_rolling,
                        {per_campaign("day")} AS cap_day,
                        {per_campaign("week")} AS cap_week,
                        {already["rolling"]} AS already_rolling,
                        {already["day"]} AS already_day,
                        {already["week"]} AS already_week
                      FROM campaigns_candidate c
                      JOIN learners_learner l ON l.id = c.learner_id
                      LEFT JOIN {ZONE_TABLE} z ON z.zone = l.time_zone AND z.channel = c.channel
                      JOIN {ZONE_TABLE} u ON u.zone = 'UTC' AND u.channel = c.channel
                      JOIN ({windows}) cw ON cw.campaign_id = c.campaign_id
                      {lateral}
                      WHERE c.run = %s AND c.rule = '' AND c.channel = %s
                        AND c.campaign_id IN ({ids})
                    ) k0
                  ) k1
                ) k2
              ) k3
            ) r
            WHERE campaigns_candidate.id = r.id AND r.stop IS NOT NULL
            """,
            [
                Rule.CAP_ROLLING,
                Rule.CAP_DAY,
                Rule.CAP_WEEK,
                *sent_params,
                _uuid(run),
                channel,
            ],
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


def _write_sends(
    run: uuid.UUID, campaigns: list[Campaign], now: datetime, *, dry_run: bool = False
) -> None:
    """Every candidate becomes a Send: queued, or suppressed with its rule — rendered with
    the template version its creator approved (``campaign_versions``), else the newest."""
    versions: dict[int, int] = {}
    for campaign in campaigns:
        email, in_app = campaign_versions(campaign=campaign, dry_run=dry_run)
        version = email if campaign.email_template_id else in_app
        if version is not None:
            versions[campaign.pk] = version
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
              COALESCE(
                CASE WHEN a.is_active THEN a.offer_id END,
                {f"CASE c.campaign_id {offers} END" if offers else "NULL"}
              ),
              c.course_id,
              SUBSTR(c.detail || COALESCE('; LPS ' || {lps}, ''), 1, 500),
              c.rule, c.priority, c.scheduled_for, c.channel, CASE c.campaign_id {categories} END,
              CASE c.campaign_id {version_case} END, l.locale, l.email, '',
              CASE WHEN c.rule = '' THEN 'queued' ELSE 'suppressed' END,
              CASE WHEN c.rule = '' AND c.scheduled_for > %s
                THEN 'waits for the end of quiet hours in the learner''s time zone'
                ELSE CASE c.rule {rule_text} ELSE '' END END, 0, %s, '', '', %s, 0, ''
            FROM campaigns_candidate c
            JOIN learners_learner l ON l.id = c.learner_id
            LEFT JOIN learners_learnerscore sc ON sc.learner_id = c.learner_id
            LEFT JOIN experiments_arm a ON a.id = c.arm_id
            WHERE c.run = %s AND c.campaign_id IN ({", ".join(str(pk) for pk in versions)})
            ON CONFLICT DO NOTHING
            """,
            [stamp, *rule_params, False, stamp, _uuid(run)],
        )
