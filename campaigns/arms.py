"""Experiment arms and the offer each candidate would carry, at evaluation.

A running experiment assigns the still-eligible learners of its campaign (sticky: an
assignment is made once, ``experiments.assignment.assign``); a learner in its holdout is
stopped with ``holdout``, the others carry their arm. The offer a candidate would carry is its
arm's while the arm is active, else its campaign's (a decision retires the losing arms and
gives the campaign the winner's); a candidate whose offer is inactive is stopped with
``offer_inactive``: nothing is sent with a switched-off offer. A send already queued when
its offer is switched off (by hand, or by a decision retiring the arm that offered it) is
stopped too (``queued_inactive_offers_stop``, at the start of each evaluation; the dispatcher
checks again just before an email leaves, and an in-app card is never served with one).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef

from expansion.commerce.models import Offer
from experiments.assignment import assign
from experiments.models import Arm, Assignment, Status
from learners.models import Learner

from .models import Campaign, Candidate, Rule, Send, SendEvent, SendEventKind, SendStatus

SWITCHED_OFF = f"{Rule.OFFER_INACTIVE.label}: switched off after the send was queued"


def arms_assign(*, run: uuid.UUID, campaigns: list[Campaign], now: datetime) -> None:
    """Assign the still-eligible learners of experimenting campaigns; stop the holdout; give
    every other candidate its arm."""
    rows = Candidate.objects.filter(run=run, rule="")
    candidate = Candidate._meta.db_table
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
        mine.filter(Exists(held)).update(rule=Rule.HOLDOUT)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {candidate} SET arm_id = (
                  SELECT a.arm_id FROM {Assignment._meta.db_table} a
                  WHERE a.experiment_id = %s AND a.learner_id = {candidate}.learner_id
                )
                WHERE run = %s AND campaign_id = %s AND rule = ''
                """,
                [experiment.pk, run, campaign.pk],
            )


def offers_inactive_stop(*, run: uuid.UUID) -> None:
    """Stop the candidates of ``run`` whose offer — their arm's while the arm is active, else
    their campaign's — is inactive."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Candidate._meta.db_table} SET rule = %s WHERE id IN (
              SELECT c.id FROM {Candidate._meta.db_table} c
              JOIN {Campaign._meta.db_table} cc ON cc.id = c.campaign_id
              LEFT JOIN {Arm._meta.db_table} a ON a.id = c.arm_id
              JOIN {Offer._meta.db_table} o
                ON o.id = COALESCE(CASE WHEN a.is_active THEN a.offer_id END, cc.offer_id)
              WHERE c.run = %s AND c.rule = '' AND NOT o.is_active
            )
            """,
            [Rule.OFFER_INACTIVE, run],
        )


def queued_inactive_offers_stop() -> int:
    """Suppress, with ``offer_inactive`` and an event, every queued campaign send whose offer
    is inactive now; returns how many. One conditional ``UPDATE``: a send a dispatcher has
    claimed meanwhile is no longer queued and is left to the dispatcher's own check."""
    send, offer = Send._meta.db_table, Offer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {send} SET status = %s, rule = %s, status_reason = %s
            WHERE status = %s AND campaign_id IS NOT NULL
              AND offer_id IN (SELECT id FROM {offer} WHERE NOT is_active)
            RETURNING id
            """,
            [SendStatus.SUPPRESSED, Rule.OFFER_INACTIVE, SWITCHED_OFF, SendStatus.QUEUED],
        )
        stopped = [row[0] for row in cursor.fetchall()]
    SendEvent.objects.bulk_create(
        [SendEvent(send_id=pk, kind=SendEventKind.FAILED, detail=SWITCHED_OFF) for pk in stopped]
    )
    return len(stopped)
