"""Separate queues per kind of work: routes for beat's entries, queues for the kicks."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from campaigns.tasks import dispatch_fanout
from expansion.celery import app
from expansion.core.queues import queue_for
from tests.factories.campaigns import CampaignFactory, SendFactory

ROOT = Path(__file__).resolve().parents[1]


def test_each_kind_of_work_is_routed_to_its_own_queue_when_configured():
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.CELERY_TASK_ROUTES))"
    )
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "expansion.settings",
        "CELERY_QUEUE_SCORING": "scoring",
        "CELERY_QUEUE_DISPATCH": "dispatch",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "learners.tasks.*": {"queue": "scoring"},
        "expansion.tasks.*": {"queue": "scoring"},
        "experiments.tasks.*": {"queue": "scoring"},
        "campaigns.tasks.dispatch_due": {"queue": "dispatch"},
        "campaigns.tasks.recover_sends": {"queue": "dispatch"},
    }  # campaigns (evaluation) not configured: the default queue


def test_queue_for_falls_back_to_the_default_queue(settings):
    settings.CELERY_QUEUES_BY_KIND = {"scoring": "", "campaigns": "eval", "dispatch": ""}
    assert (queue_for("scoring"), queue_for("campaigns")) == (
        settings.CELERY_TASK_DEFAULT_QUEUE,
        "eval",
    )


def _waiting(queue: str) -> int:
    """Messages waiting in ``queue`` on the configured broker, read through kombu (Redis in CI,
    the filesystem transport in the embedded mode)."""
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue=queue).message_count


@pytest.mark.django_db
def test_the_dispatch_fanout_publishes_on_the_dispatch_queue(settings):
    queue = f"dispatch-{uuid.uuid4().hex[:8]}"
    settings.CELERY_QUEUES_BY_KIND = {"scoring": "", "campaigns": "", "dispatch": queue}
    campaign = CampaignFactory()
    SendFactory(campaign=campaign, channel="email")
    default_before = _waiting(settings.CELERY_TASK_DEFAULT_QUEUE)
    try:
        assert dispatch_fanout() == 1
        assert _waiting(queue) == 1
        assert _waiting(settings.CELERY_TASK_DEFAULT_QUEUE) == default_before
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
