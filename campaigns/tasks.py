"""Celery tasks: thin wrappers that call the campaign services."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings

from .dispatch import CHUNK, dispatch_chunk, due_count, sends_recover
from .evaluate import campaigns_evaluate

# A dispatch task stops taking new chunks after this long, so that beat's next run and other
# workers share the queue.
DISPATCH_BUDGET_SECONDS = 50


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
        dispatch_due.apply_async()
    return chunks


@shared_task(acks_late=True)
def dispatch_due() -> int:
    """Deliver chunks of due campaign emails until none are left or the budget is spent."""
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < DISPATCH_BUDGET_SECONDS:
        done = dispatch_chunk()
        sent += done.sent
        if done.claimed < CHUNK or done.released:
            break
    return sent


@shared_task(acks_late=True)
def recover_sends() -> dict[str, int]:
    """Return a dead worker's unattempted sends to the queue (see ``sends_recover``)."""
    return sends_recover()
