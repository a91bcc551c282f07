"""Which campaign emails are due, and claiming them for one dispatcher.

A claim takes up to a chunk of the due emails of active campaigns, oldest first (the
``send_due_order_idx`` order), in one statement: ``queued → sending`` under the dispatcher's
lease (``campaigns.leases``), with ``FOR UPDATE SKIP LOCKED`` so that concurrent dispatchers
take disjoint rows. A paused campaign's sends wait for it to resume.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from .leases import lease_create, lease_end
from .models import Campaign, CampaignStatus, Send, SendStatus

CHUNK = 200


def sends_claim(
    *, limit: int = CHUNK, now: datetime | None = None, lease: uuid.UUID | None = None
) -> list[int]:
    """Claim up to ``limit`` due emails of active campaigns (queued → sending) under
    ``lease`` (a new one if None, committed with the claim; ended at once if nothing was
    claimed); returns their ids, in order.
    Attempts are not counted here: a claim is not a delivery tried."""
    now = now or timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    send = Send._meta.db_table
    # The picked ids as one array, matched by primary key alone: as ``IN (SELECT …) AND
    # status = 'queued'`` the planner, with the statistics of before an evaluation queued
    # 100,000 sends, looped over every queued row for each picked one (5 s a claim,
    # bench/dispatch.py). The status need not be checked again: the pick locked those rows
    # (FOR UPDATE re-reads a row changed meanwhile and keeps it only if still queued).
    with transaction.atomic():
        lease = lease or lease_create(now=now)
        with connection.cursor() as cursor:
            cursor.execute(
                # The pick is materialised once: as a plain IN (subquery … LIMIT) PostgreSQL
                # may run it again per row and claim more than the limit.
                f"""
                WITH picked AS MATERIALIZED (
                  SELECT id FROM {send}
                  WHERE status = 'queued' AND channel = 'email' AND campaign_id IS NOT NULL
                    AND (scheduled_for IS NULL OR scheduled_for <= %s)
                    AND campaign_id IN (
                      SELECT id FROM {Campaign._meta.db_table} WHERE status = %s
                    )
                  ORDER BY scheduled_for, id LIMIT %s FOR UPDATE OF {send} SKIP LOCKED
                )
                UPDATE {send}
                SET status = 'sending', claimed_at = %s, handoff_at = NULL, lease = %s
                WHERE id = ANY(ARRAY(SELECT id FROM picked))
                RETURNING id
                """,
                [stamp, CampaignStatus.ACTIVE, limit, stamp, lease],
            )
            ids = sorted(row[0] for row in cursor.fetchall())
        if not ids:
            lease_end(lease=lease)  # nothing claimed: no lease to keep alive
        return ids


def due_count(*, now: datetime | None = None) -> int:
    """Campaign emails due now (what a dispatch fan-out sizes itself by)."""
    now = now or timezone.now()
    return Send.objects.filter(
        Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now),
        status=SendStatus.QUEUED,
        channel="email",
        campaign__status=CampaignStatus.ACTIVE,
    ).count()
