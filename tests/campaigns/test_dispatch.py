"""Dispatch: chunks, claims, backoff, recovery — and never twice, even when a worker is killed."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.delivery import retry_delay
from campaigns.dispatch import HANDOFF_BATCH, dispatch_chunk, sends_claim, sends_recover
from campaigns.models import Send, SendStatus
from tests.campaigns.conftest import Sink, free_port
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import LearnerFactory
from tests.workers import worker_start


def queued(campaign, n: int, **kwargs) -> list[Send]:
    version = campaign.email_template.versions.get()
    return [
        SendFactory(
            learner=LearnerFactory(external_id=f"q{n}-{i}-{uuid.uuid4().hex[:6]}"),
            campaign=campaign,
            occurrence_key=f"event:{i}",
            template_version=version,
            channel="email",
            **kwargs,
        )
        for i in range(n)
    ]


def message_ids(sink: Sink) -> list[str]:
    return [message["Message-ID"] for message in sink.messages]


@pytest.mark.django_db
def test_a_chunk_delivers_the_due_sends_once_over_one_connection(smtp):
    campaign = CampaignFactory()
    due = queued(campaign, 5)
    later = queued(campaign, 1, scheduled_for=timezone.now() + timedelta(hours=1))[0]

    done = dispatch_chunk()

    assert (done.claimed, done.sent, done.failed, done.released) == (5, 5, 0, 0)
    assert len(smtp.messages) == 5
    assert len(smtp.sessions) == 1  # one SMTP connection for the chunk
    for send in due:
        send.refresh_from_db()
        assert (send.status, send.attempts) == (SendStatus.SENT, 1)
    assert sorted(message_ids(smtp)) == sorted(s.message_id for s in due)
    later.refresh_from_db()
    assert later.status == SendStatus.QUEUED
    assert dispatch_chunk().claimed == 0  # nothing is sent twice
    assert len(smtp.messages) == 5


@pytest.mark.django_db
def test_claims_are_disjoint_and_only_due_campaign_emails():
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    queued(campaign, 3)
    SendFactory(status=SendStatus.QUEUED)  # a test send (no campaign): not the dispatcher's
    first = sends_claim(limit=2)
    second = sends_claim(limit=2)
    assert (len(first), len(second)) == (2, 1)
    assert not set(first) & set(second)
    assert sends_claim(limit=2) == []


@pytest.mark.django_db
def test_server_down_releases_the_chunk_then_everything_goes_once(smtp, settings):
    campaign = CampaignFactory()
    sends = queued(campaign, 4)
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nothing listens here

    done = dispatch_chunk()

    assert (done.claimed, done.sent, done.released) == (4, 0, 4)
    assert Send.objects.filter(status=SendStatus.QUEUED).count() == 4
    assert smtp.messages == []
    settings.EMAIL_PORT = port
    assert dispatch_chunk().sent == 4
    assert sorted(message_ids(smtp)) == sorted(
        Send.objects.filter(pk__in=[s.pk for s in sends]).values_list("message_id", flat=True)
    )


@pytest.mark.django_db
def test_a_4xx_answer_defers_with_backoff_and_releases_the_rest(smtp):
    campaign = CampaignFactory()
    first, *rest = queued(campaign, 3)
    smtp.refuse[first.learner.email] = "451 Try again later"
    before = timezone.now()

    done = dispatch_chunk()

    assert (done.deferred, done.sent, done.released) == (1, 0, 2)
    first.refresh_from_db()
    assert first.status == SendStatus.QUEUED
    assert first.status_reason.startswith("deferred: SMTPRecipientsRefused")
    assert first.scheduled_for >= before + retry_delay(1)
    assert retry_delay(1) == timedelta(minutes=1)
    assert retry_delay(4) == timedelta(minutes=8)
    assert retry_delay(20) == timedelta(hours=6)
    # The others were not attempted and go at once; the deferred one waits for its time.
    assert dispatch_chunk().sent == 2
    assert dispatch_chunk(now=first.scheduled_for).claimed == 1


@pytest.mark.django_db
def test_recovery_requeues_the_unattempted_and_fails_the_uncertain():
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    untouched, handed = queued(campaign, 2)
    stale = timezone.now() - timedelta(minutes=11)
    Send.objects.filter(pk=untouched.pk).update(status=SendStatus.SENDING, claimed_at=stale)
    Send.objects.filter(pk=handed.pk).update(
        status=SendStatus.SENDING, claimed_at=stale, handoff_at=stale
    )
    fresh = queued(campaign, 1)[0]
    Send.objects.filter(pk=fresh.pk).update(status=SendStatus.SENDING, claimed_at=timezone.now())

    assert sends_recover() == {"requeued": 1, "unknown": 1}

    statuses = dict(Send.objects.values_list("pk", "status"))
    assert statuses == {
        untouched.pk: SendStatus.QUEUED,
        handed.pk: SendStatus.FAILED,
        fresh.pk: SendStatus.SENDING,  # still within its lease: its worker may be alive
    }
    assert Send.objects.get(pk=handed.pk).status_reason.startswith("outcome unknown")


def _worker(queue: str, port: int) -> subprocess.Popen:
    return worker_start(
        queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
    )


def _wait(condition, timeout: float) -> bool:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(slow_sink, settings):
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a database server they share with the test")
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
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    received_at_kill = len(sink.messages)
    assert received_at_kill < total  # killed mid-batch
    # After the lease, recovery; then the rest goes out from here.
    recovered = sends_recover(lease=timedelta(0))
    assert recovered["unknown"] <= HANDOFF_BATCH  # at most the batch being handed over
    while dispatch_chunk().claimed:
        pass

    ids = message_ids(sink)
    assert len(ids) == len(set(ids))  # nothing twice
    rows = dict(Send.objects.filter(campaign=campaign).values_list("message_id", "status"))
    counts = {status: list(rows.values()).count(status) for status in set(rows.values())}
    assert counts.get(SendStatus.QUEUED, 0) == counts.get(SendStatus.SENDING, 0) == 0
    assert counts[SendStatus.SENT] + counts.get(SendStatus.FAILED, 0) == total  # none lost
    assert counts.get(SendStatus.FAILED, 0) == recovered["unknown"]
    sent_ids = {mid for mid, status in rows.items() if status == SendStatus.SENT}
    assert sent_ids <= set(ids)
    # A message the server took while its worker died is the one "outcome unknown" row.
    assert len(set(ids) - sent_ids) <= recovered["unknown"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_deliver_each_send_exactly_once(slow_sink):
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a database server they share with the test")
    from campaigns.tasks import dispatch_due

    sink, port = slow_sink
    sink.delay = 0.002
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    total = 400
    queued(campaign, total)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    workers = [_worker(queue, port) for _ in range(2)]
    try:
        for _ in range(2):
            dispatch_due.apply_async(queue=queue)
        done = _wait(
            lambda: not Send.objects.filter(
                status__in=[SendStatus.QUEUED, SendStatus.SENDING]
            ).exists(),
            120,
        )
        assert done, "the workers did not finish"
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    ids = message_ids(sink)
    assert len(ids) == total
    assert len(set(ids)) == total
    assert Send.objects.filter(status=SendStatus.SENT).count() == total
    assert set(ids) == set(Send.objects.values_list("message_id", flat=True))
