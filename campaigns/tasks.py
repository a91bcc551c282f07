"""Celery tasks: thin wrappers that call the campaign services."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from expansion.core.queues import queue_for

from .claim import CHUNK, due_count
from .dispatch import dispatch_chunk
from .evaluate import campaigns_evaluate
from .leases import sends_recover

# After new events, an evaluation runs this many seconds later (the scoring pass kicked by the
# same batch runs first; learners still waiting for it are left for the next evaluation), and
# at most once per this many seconds.
EVALUATION_DELAY_SECONDS = 8
EVALUATION_DEBOUNCE_SECONDS = 5


def evaluation_kick(**kwargs: object) -> None:
    """Enqueue an evaluation soon after new events, unless one was enqueued moments ago."""
    if not cache.add("campaigns:evaluation-kick", 1, timeout=EVALUATION_DEBOUNCE_SECONDS):
        return
    try:
        evaluate_campaigns.apply_async(
            countdown=EVALUATION_DELAY_SECONDS, queue=queue_for("campaigns")
        )
    except Exception:  # noqa: BLE001 - the broker being down must not fail ingestion
        logging.getLogger(__name__).warning("could not enqueue evaluation; beat will catch up")
        cache.delete("campaigns:evaluation-kick")


@shared_task(acks_late=True)
def evaluate_campaigns() -> int:
    """Evaluate every active campaign, then fan the due sends out to the workers."""
    result = campaigns_evaluate()
    dispatch_fanout()
    return result.queued


def dispatch_fanout() -> int:
    """One dispatch task per chunk of due sends, up to ``DISPATCH_PARALLELISM`` at once."""
    chunks = min(-(-due_count() // CHUNK), settings.DISPATCH_PARALLELISM)
    for _ in range(chunks):
        dispatch_due.apply_async(queue=queue_for("dispatch"))
    return chunks


@shared_task(acks_late=True)
def dispatch_due() -> int:
    """Deliver chunks of due campaign emails until none are left or the budget is spent."""
    started = time.monotonic()
    sends_recover()  # a dead dispatcher's sends go first (a cheap probe when there are none)
    sent = 0
    while time.monotonic() - started < settings.DISPATCH_BUDGET_SECONDS:
        done = dispatch_chunk()
        sent += done.sent
        if done.circuit_open or done.claimed < CHUNK or done.released or done.lease_lost:
            break
    return sent


@shared_task(acks_late=True)
def recover_sends() -> dict[str, int]:
    """Return dead dispatchers' sends to the queue (see ``campaigns.leases.sends_recover``)."""
    return sends_recover()
