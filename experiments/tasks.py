"""Celery tasks: thin wrappers around the experiment services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from .analysis import experiment_results
from .models import Experiment, Status

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def analyse_running() -> int:
    """Store each running experiment's figures; log a sample-ratio mismatch (no learner data)."""
    count = 0
    for experiment in Experiment.objects.filter(status=Status.RUNNING):
        results = experiment_results(experiment=experiment)
        Experiment.objects.filter(pk=experiment.pk).update(
            last_results=results, analysed_at=timezone.now()
        )
        if results.get("sample_ratio_mismatch", {}).get("flagged"):
            log.warning("experiment %s: sample ratio mismatch", experiment.pk)
        count += 1
    return count
