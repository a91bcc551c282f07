"""Celery tasks: thin wrappers that call the scoring functions."""

from celery import shared_task

from .scoring import score_dirty_learners, score_learners, score_scheduled


@shared_task(acks_late=True)
def score_dirty() -> int:
    """Score learners marked dirty, in batches, until none are left (bounded per run)."""
    return score_dirty_learners().learners


@shared_task(acks_late=True)
def score_all() -> int:
    """The scheduled pass over everyone: a delta pass, from scratch when one is due."""
    return score_scheduled().learners


@shared_task(acks_late=True)
def score_all_from_scratch() -> int:
    """A pass from scratch: every learner, fresh RFM quintiles, every segment re-evaluated."""
    return score_learners(full=True).learners
