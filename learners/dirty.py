"""Which learners need rescoring, and waking the scorer up.

Every write that can change a score marks its learners dirty in the same transaction
(``DirtyLearner``): event ingestion, the learner, course, enrollment, order and subscription
syncs, and saves and deletes in the admin (``learners.signals``). A scoring pass claims and
clears them. After commit, ``scoring_kick``
enqueues a pass at most once every few seconds, so a new event shows in the learner's score
within seconds; the beat schedule (every 20 s) catches anything a lost message missed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.utils import timezone

from expansion.core.queues import queue_for

from .models import DirtyLearner
from .tasks import score_dirty

KICK_DEBOUNCE_SECONDS = 5
logger = logging.getLogger(__name__)

# Sent after the commit of a batch that stored new events. Apps above learners (campaigns)
# listen to react to them without learners importing them.
events_stored = Signal()


def learners_mark_dirty(learner_ids: Iterable[int]) -> None:
    """Mark learners for the next scoring pass; idempotent."""
    ids = sorted(set(learner_ids))
    if ids:
        now = timezone.now()
        DirtyLearner.objects.bulk_create(
            [DirtyLearner(learner_id=pk, marked_at=now) for pk in ids], batch_size=1000
        )


def learners_mark_dirty_query(learner_ids: QuerySet) -> int:
    """Mark the learners a ``values(<id column>)`` queryset selects, in one INSERT … SELECT.

    For writes that touch many learners at once (a course's module list changes the
    completion of everyone enrolled in it). Returns how many rows were logged.
    """
    try:
        sql, params = learner_ids.order_by().query.sql_with_params()
    except EmptyResultSet:  # e.g. ``id__in=[]``: nobody to mark
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DirtyLearner._meta.db_table} (learner_id, marked_at) "
            f"SELECT DISTINCT d.* , %s FROM ({sql}) d",
            [timezone.now(), *params],
        )
        return cursor.rowcount


def scoring_kick_on_commit() -> None:
    """Wake the scorer once the current transaction commits."""
    transaction.on_commit(scoring_kick)


def events_stored_notify() -> None:
    events_stored.send(sender=None)


def scoring_kick() -> None:
    """Enqueue an incremental scoring pass unless one was enqueued moments ago."""
    if not cache.add("learners:scoring-kick", 1, timeout=KICK_DEBOUNCE_SECONDS):
        return
    try:
        score_dirty.apply_async(queue=queue_for("scoring"))
    except Exception:  # noqa: BLE001 - the broker being down must not fail ingestion
        logger.warning("could not enqueue scoring; beat will catch up")
        cache.delete("learners:scoring-kick")
