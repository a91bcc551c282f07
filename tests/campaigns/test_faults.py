"""Fault injection with real processes: the database connection dropped under a dispatching
worker, and the broker restarted under it. Each ends with exact counts: every send delivered
or (at most one hand-off batch) marked "outcome unknown", none queued, none sent twice.
(A worker SIGKILLed mid-batch and two workers racing: test_dispatch.py; SMTP down then back:
test_dispatch.py and test_delivery.py; the same event batch posted twice at once:
tests/learners/test_ingest_concurrency.py.)"""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from campaigns.dispatch import HANDOFF_BATCH, dispatch_chunk, sends_recover
from campaigns.models import Send, SendStatus
from tests.campaigns.conftest import free_port
from tests.campaigns.test_dispatch import _wait, _worker, message_ids, queued
from tests.factories.campaigns import CampaignFactory
from tests.factories.experiments import ExperimentSettingsFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a database server they share with the test")


def _outcome(campaign, sink, total: int, unknown: int) -> None:
    ids = message_ids(sink)
    assert len(ids) == len(set(ids))  # nothing twice
    rows = dict(Send.objects.filter(campaign=campaign).values_list("message_id", "status"))
    statuses = list(rows.values())
    assert statuses.count(SendStatus.QUEUED) == statuses.count(SendStatus.SENDING) == 0
    assert statuses.count(SendStatus.SENT) + statuses.count(SendStatus.FAILED) == total
    assert statuses.count(SendStatus.FAILED) == unknown  # only "outcome unknown"
    sent = {mid for mid, status in rows.items() if status == SendStatus.SENT}
    assert sent <= set(ids)
    assert len(set(ids) - sent) <= unknown


def test_the_database_connection_dropped_mid_batch_loses_nothing(slow_sink):
    from campaigns.tasks import dispatch_due

    sink, port = slow_sink
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    total = 300
    queued(campaign, total)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = _worker(queue, port)
    try:
        dispatch_due.apply_async(queue=queue)
        assert _wait(lambda: len(sink.messages) >= 60, 60), "the worker never got going"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1  # the worker's connection
        # The worker's next write fails and its chunk stops: the messages stop coming.
        before = -1
        while before != len(sink.messages):
            before = len(sink.messages)
            _wait(lambda: False, 1.0)
        assert len(sink.messages) < total  # cut mid-batch
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    recovered = sends_recover(lease=timedelta(0))
    assert recovered["unknown"] <= HANDOFF_BATCH
    while dispatch_chunk().claimed:
        pass
    _outcome(campaign, sink, total, recovered["unknown"])


def _redis(port: int, workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )


def test_the_broker_restarted_mid_dispatch_loses_nothing(slow_sink, tmp_path):
    """Redis (no persistence) stopped and started again under a dispatching worker: the
    worker reconnects, its chunk finishes, and the next scheduled dispatch (beat's, sent here)
    takes the rest — the sends live in the database, not in the broker."""
    import redis

    from campaigns.tasks import dispatch_due
    from expansion.celery import app

    sink, port = slow_sink
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    total = 300
    queued(campaign, total)
    broker_port = free_port()
    broker_url = f"redis://127.0.0.1:{broker_port}/0"
    broker = _redis(broker_port, tmp_path)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = None
    try:
        assert _wait(lambda: _pings(redis, broker_port), 10), "redis did not start"
        worker = _worker_on(queue, port, broker_url)
        with app.connection_for_write(broker_url) as conn:
            dispatch_due.apply_async(queue=queue, connection=conn)
        assert _wait(lambda: len(sink.messages) >= 30, 60), "the worker never got going"
        broker.terminate()
        broker.wait(timeout=10)
        assert len(sink.messages) < total  # restarted mid-dispatch
        broker = _redis(broker_port, tmp_path)
        assert _wait(lambda: _pings(redis, broker_port), 10), "redis did not restart"

        def finished() -> bool:
            return not Send.objects.filter(
                campaign=campaign, status__in=[SendStatus.QUEUED, SendStatus.SENDING]
            ).exists()

        # What beat does every 30 s: ask for a dispatch (the queue was lost with Redis).
        for _ in range(30):
            if _wait(finished, 3):
                break
            with app.connection_for_write(broker_url) as conn:
                dispatch_due.apply_async(queue=queue, connection=conn)
        assert finished(), "the sends did not all go after the restart"
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        broker.terminate()
        broker.wait(timeout=10)
    _outcome(campaign, sink, total, 0)
    assert len(sink.messages) == total


def _pings(redis, port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.exceptions.ConnectionError:
        return False


def _worker_on(queue: str, smtp_port: int, broker_url: str) -> subprocess.Popen:
    from tests.workers import worker_start

    return worker_start(
        queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
        CELERY_BROKER_URL=broker_url,
    )
