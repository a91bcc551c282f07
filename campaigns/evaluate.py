"""Evaluating campaigns: trigger occurrences → guardrails → experiment arms → Send rows.

One evaluation is a fixed number of set-based statements per campaign and per guardrail,
whatever the number of learners, in seven steps:

1. each active campaign's trigger rows (``campaigns.triggers``), restricted to its audience
   segment and to occurrences it has not answered yet, go into ``Candidate`` (one
   ``INSERT … SELECT`` per trigger query), each with the time it may go: now, or the end of
   quiet hours in the learner's own time zone (every zone's clock is computed once, in
   Python, into a temporary table the statements join: ``campaigns.quiet_hours``);
2. a learner who triggers several campaigns at once gets their priority raised (seed 003);
3. the guardrails, in a fixed order, as one ``UPDATE`` whose CASE stamps on each stopped
   candidate the *first* rule that stops it (``campaigns.guardrails``);
4. experiment arms are assigned (sticky; holdout learners are stopped with ``holdout``), and
   a candidate whose offer is inactive is stopped (``campaigns.arms``; before the steps, a
   send queued earlier whose offer has been switched off since is stopped too);
5. one offer per moment: the highest priority wins, the rest are ``superseded``;
6. frequency caps per channel — rolling, and calendar day and week in the learner's zone
   (``campaigns.caps``);
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
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from expansion.core.db.locks import AdvisoryLock
from experiments.models import Arm
from learners.models import DirtyLearner, Learner, LearnerScore, SegmentMembership
from learners.scoring import StepTimer

from .approval import campaign_versions, campaigns_back_to_review
from .arms import arms_assign, offers_inactive_stop, queued_inactive_offers_stop
from .caps import COUNTED, caps_apply
from .decisions import decisions_apply
from .guardrails import guardrail_checks, guardrails_apply, onboarding_start
from .models import Campaign, CampaignStatus, Candidate, GuardrailPolicy, Rule, Send
from .quiet_hours import ZONE_TABLE, ZoneClock, zone_clock, zone_table_create, zone_table_drop
from .triggers import COLUMNS, trigger_rows

# Importable from here as before their own modules held them.
__all__ = [
    "COUNTED",
    "EVALUATION_LOCK",
    "Evaluation",
    "ZoneClock",
    "campaigns_evaluate",
    "guardrail_checks",
    "onboarding_start",
    "zone_clock",
]

EVALUATION_LOCK = int(AdvisoryLock.CAMPAIGN_EVALUATION)  # expansion.core.db.locks


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
    timer = StepTimer()
    chosen = list(
        campaigns
        if campaigns is not None
        else Campaign.objects.filter(status=CampaignStatus.ACTIVE).select_related(
            "moment", "experiment"
        )
    )
    result = Evaluation()
    result.timings = timer.timings
    if not dry_run:
        chosen = decisions_apply(campaigns=chosen)
        timer.lap("decisions")
        # A send queued before its offer was switched off (or its arm retired) never goes.
        queued_inactive_offers_stop()
        timer.lap("inactive offers")
        # What was approved is what goes out: a campaign changed since (or never approved)
        # goes back to review before it is evaluated.
        if campaigns_back_to_review(now=now):
            chosen = [c for c in chosen if c.pk in _still_active(chosen)]
        timer.lap("approvals")
    if not chosen:
        return result
    policy = GuardrailPolicy.load()
    run = uuid.uuid4()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK])
            # The commit need not wait for its WAL flush (0.27 s for 10,000 sends,
            # bench/dispatch.py). Nothing leaves on an evaluation's word alone: a send is
            # delivered only after a dispatcher's own commit (synchronous) claims it, and a
            # WAL flush is up to a position, so it makes this commit durable first. A crash
            # that loses this commit loses only sends that nobody acted on; the next
            # evaluation finds the same occurrences and writes them again.
            cursor.execute("SET LOCAL synchronous_commit = off")
            # As in scoring passes: compiling these large statements costs more than it saves
            # on this many rows.
            cursor.execute("SET LOCAL jit = off")
        candidates = Candidate.objects.filter(run=run)
        zone_table_create(now=now, policy=policy)
        timer.lap("zones")
        for campaign in chosen:
            _collect(run, campaign, now)
        result.candidates = candidates.count()
        timer.lap("collect")
        if result.candidates:
            if len(chosen) > 1:  # one campaign: nobody triggers several
                _boost(run, policy)
            timer.lap("boost")
            guardrails_apply(run=run, campaigns=chosen, policy=policy, now=now)
            timer.lap("guardrails")
            arms_assign(run=run, campaigns=chosen, now=now)
            offers_inactive_stop(run=run)
            timer.lap("experiments")
            _superseded(run)
            timer.lap("superseded")
            caps_apply(run=run, campaigns=chosen, policy=policy)
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
        zone_table_drop()
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


def answered(campaign: Campaign) -> Exists:
    """On trigger rows: the occurrence already has this campaign's send (on its channel)."""
    return Exists(
        Send.objects.filter(
            campaign_id=campaign.pk,
            learner_id=OuterRef("t_learner_id"),
            occurrence_key=OuterRef("t_occurrence_key"),
            channel=campaign.channel,
        )
    )


def waiting_for_scores() -> Exists:
    """On trigger rows: the learner has data not scored yet. Left for the next evaluation:
    their guardrails (LPS, stage, flags) must be read from fresh scores, and the decision is
    final."""
    return Exists(DirtyLearner.objects.filter(learner_id=OuterRef("t_learner_id")))


def segment_members(campaign: Campaign) -> QuerySet | None:
    """The learner ids of the campaign's segment now (None: no segment, everyone)."""
    if not campaign.segment_id:
        return None
    return SegmentMembership.objects.filter(
        segment_id=campaign.segment_id, exited_at__isnull=True
    ).values("learner_id")


def _collect(run: uuid.UUID, campaign: Campaign, now: datetime) -> None:
    """The campaign's trigger occurrences it has not answered yet, into Candidate."""
    channel = campaign.channel
    members = segment_members(campaign)
    for rows in trigger_rows(campaign, now=now):
        rows = rows.filter(~answered(campaign), ~waiting_for_scores())
        if members is not None:
            rows = rows.filter(t_learner_id__in=members)
        sql, params = rows.query.sql_with_params()
        candidate, learner = Candidate._meta.db_table, Learner._meta.db_table
        names = ", ".join(f"t.t_{name}" for name in COLUMNS)
        # When it may go: now, or the end of quiet hours in the learner's zone (the zone
        # table's row; an unknown zone keeps UTC's).
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {candidate}
                  (run, campaign_id, learner_id, occurrence_key, occurred_at, course_id, detail,
                   moment_id, channel, priority, rule, scheduled_for)
                SELECT %s, %s, {names}, %s, %s, %s, '', COALESCE(z.send_at, u.send_at)
                FROM ({sql}) t
                JOIN {learner} l ON l.id = t.t_learner_id
                LEFT JOIN {ZONE_TABLE} z ON z.zone = l.time_zone AND z.channel = %s
                JOIN {ZONE_TABLE} u ON u.zone = 'UTC' AND u.channel = %s
                ON CONFLICT DO NOTHING
                """,
                [
                    run,
                    campaign.pk,
                    campaign.moment_id,
                    channel,
                    campaign.priority,
                    *params,
                    channel,
                    channel,
                ],
            )


def _boost(run: uuid.UUID, policy: GuardrailPolicy) -> None:
    """Each further campaign a learner triggers in this evaluation adds to every priority."""
    if not policy.multi_trigger_boost:
        return
    table = Candidate._meta.db_table
    # One grouped count joined once (a correlated count per row took 2.5 s for 10,000).
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET priority = priority + %s * (b.n - 1)
            FROM (
              SELECT learner_id, COUNT(DISTINCT campaign_id) AS n FROM {table}
              WHERE run = %s GROUP BY learner_id HAVING COUNT(DISTINCT campaign_id) > 1
            ) b
            WHERE {table}.run = %s AND {table}.learner_id = b.learner_id
            """,
            [policy.multi_trigger_boost, run, run],
        )


def _superseded(run: uuid.UUID) -> None:
    """One offer per learner per moment: the highest priority (then the oldest campaign)."""
    table = Candidate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET rule = %s WHERE id IN (
              SELECT id FROM (
                SELECT id, ROW_NUMBER() OVER (
                  PARTITION BY learner_id, moment_id, channel
                  ORDER BY priority DESC, campaign_id, occurred_at DESC, id
                ) AS place
                FROM {table} WHERE run = %s AND rule = ''
              ) ranked WHERE place > 1
            )
            """,
            [Rule.SUPERSEDED, run],
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
            "learner_id": row.learner_id,
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

    def per_campaign(values: dict[int, Any]) -> tuple[str, list[Any]]:
        """``CASE c.campaign_id WHEN … THEN … END`` over ``values``, and its parameters."""
        whens = " ".join(["WHEN %s THEN %s"] * len(values))
        return f"CASE c.campaign_id {whens} END", [v for pair in values.items() for v in pair]

    triggers, trigger_params = per_campaign({c.pk: str(c.trigger) for c in campaigns})
    offer_ids = {c.pk: c.offer_id for c in campaigns if c.offer_id}
    offers, offer_params = per_campaign(offer_ids) if offer_ids else ("NULL", [])
    categories, category_params = per_campaign({c.pk: str(c.category) for c in campaigns})
    version_case, version_params = per_campaign(versions)
    labels = dict(Rule.choices)
    rule_text = " ".join("WHEN %s THEN %s" for _ in labels)
    rule_params = [value for pair in labels.items() for value in pair]
    ids = list(versions)
    stamp = connection.ops.adapt_datetimefield_value(now)
    lps = "CAST(CAST(ROUND(sc.lps) AS INTEGER) AS TEXT)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Send._meta.db_table}
              (learner_id, campaign_id, occurrence_key, trigger, moment_id, arm_id, offer_id,
               course_id, reason, rule, priority, scheduled_for, channel, category,
               template_version_id, locale, to_email, subject, status, status_reason, attempts,
               is_test, message_id, provider_message_id, created_at, clicks, dismiss_reason)
            SELECT c.learner_id, c.campaign_id, c.occurrence_key,
              {triggers}, c.moment_id, c.arm_id,
              COALESCE(CASE WHEN a.is_active THEN a.offer_id END, {offers}),
              c.course_id,
              SUBSTR(c.detail || COALESCE('; LPS ' || {lps}, ''), 1, 500),
              c.rule, c.priority, c.scheduled_for, c.channel, {categories},
              {version_case}, l.locale, l.email, '',
              CASE WHEN c.rule = '' THEN 'queued' ELSE 'suppressed' END,
              CASE WHEN c.rule = '' AND c.scheduled_for > %s
                THEN 'waits for the end of quiet hours in the learner''s time zone'
                ELSE CASE c.rule {rule_text} ELSE '' END END, 0, %s, '', '', %s, 0, ''
            FROM {Candidate._meta.db_table} c
            JOIN {Learner._meta.db_table} l ON l.id = c.learner_id
            LEFT JOIN {LearnerScore._meta.db_table} sc ON sc.learner_id = c.learner_id
            LEFT JOIN {Arm._meta.db_table} a ON a.id = c.arm_id
            WHERE c.run = %s AND c.campaign_id IN ({", ".join(["%s"] * len(ids))})
            ON CONFLICT DO NOTHING
            """,
            [
                *trigger_params,
                *offer_params,
                *category_params,
                *version_params,
                stamp,
                *rule_params,
                False,
                stamp,
                run,
                *ids,
            ],
        )
