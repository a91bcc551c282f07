"""Dispatch: chunks, leases, the checks at the moment of sending, one failure alone, backoff
and the circuit breaker — each counted at a real SMTP server on loopback. (Real worker
processes killed, frozen or cut off: test_faults.py.)"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import contexts
from campaigns.circuit import circuit_pass, circuit_trip
from campaigns.claim import sends_claim
from campaigns.delivery import retry_delay
from campaigns.dispatch import _HAND_OVER, dispatch_chunk
from campaigns.leases import UNKNOWN, heartbeat_interval, lease_length, sends_recover
from campaigns.models import (
    Campaign,
    CampaignStatus,
    DispatchLease,
    GuardrailPolicy,
    JourneyMoment,
    MailCircuit,
    Purpose,
    Rule,
    Send,
    SendEvent,
    SendStatus,
    status_now,
)
from campaigns.tasks import dispatch_due
from expansion.commerce.models import Offer
from learners.models import DirtyLearner, Learner, LearnerScore
from tests.campaigns.conftest import Sink, free_port
from tests.factories.campaigns import CampaignFactory, GuardrailPolicyFactory, SendFactory
from tests.factories.expansion import OfferFactory, OrderFactory, OrderLineFactory
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import (
    DirtyLearnerFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    LearnerScoreFactory,
)
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory
from tests.workers import worker_start

# 10:00 in London on a Monday in June (BST, UTC+1): outside the default quiet hours.
MORNING = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
YEARS_2 = timedelta(days=730)


def queued(campaign, n: int, *, quiet: bool = False, **kwargs) -> list[Send]:
    """``n`` queued email sends of ``campaign``, each to a new scored learner (LPS 80).
    Unless ``quiet``, quiet hours are switched off, so that the tests that are not about
    them do not depend on the hour they run at."""
    if not quiet:
        GuardrailPolicy.objects.update_or_create(
            id=1, defaults={"quiet_start": clock_time(0), "quiet_end": clock_time(0)}
        )
    version = campaign.email_template.versions.get()
    sends = []
    for i in range(n):
        learner = LearnerFactory(external_id=f"q{n}-{i}-{uuid.uuid4().hex[:6]}")
        LearnerScoreFactory(learner=learner, lps=80)
        sends.append(
            SendFactory(
                learner=learner,
                campaign=campaign,
                occurrence_key=f"event:{i}",
                template_version=version,
                channel="email",
                **kwargs,
            )
        )
    return sends


def message_ids(sink: Sink) -> list[str]:
    return [message["Message-ID"] for message in sink.messages]


def status(send: Send) -> tuple:
    send.refresh_from_db()
    return send.status, send.rule, send.attempts


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
        assert (send.status, send.attempts, send.lease) == (SendStatus.SENT, 1, None)
    assert sorted(message_ids(smtp)) == sorted(s.message_id for s in due)
    assert SendEvent.objects.filter(kind="sent").count() == 5
    assert DispatchLease.objects.count() == 0  # the chunk's lease ends with it
    later.refresh_from_db()
    assert later.status == SendStatus.QUEUED
    assert dispatch_chunk().claimed == 0  # nothing is sent twice
    assert len(smtp.messages) == 5


@pytest.mark.django_db
def test_the_hand_over_mark_is_prepared_once_and_planned_once(smtp):
    """The per-message mark runs as a server-side prepared statement with a generic plan:
    Django binds on the client, so PostgreSQL parsed and planned it for every message."""
    campaign = CampaignFactory()
    queued(campaign, 8)
    marks = (
        "SELECT count(*), coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) "
        "FROM pg_prepared_statements WHERE statement LIKE '%%WITH renewed AS%%'"
    )

    def prepared() -> tuple[int, int, int]:
        with connection.cursor() as cursor:  # the test's connection, earlier tests' included
            cursor.execute(marks)
            return cursor.fetchone()

    _, generic_before, custom_before = prepared()
    done = dispatch_chunk()

    assert done.sent == 8
    statements, generic, custom = prepared()
    # One statement on the connection, executed once a message; planned as custom plans for
    # its first 5 executions (PostgreSQL's rule), then the generic plan, never again.
    assert statements == 1
    assert (generic + custom) - (generic_before + custom_before) == 8
    assert custom == 5


@pytest.mark.django_db
def test_a_chunk_reads_in_the_same_statements_whatever_its_size(smtp):
    """Set-based: the rows a chunk's sends share (campaign, moment, offer, course, template
    version) are read once each and every per-send fact in a fixed number of queries, so a
    chunk of 12 runs the statements of a chunk of 3 (the per-message marks, on their own
    prepared cursor, are not among Django's queries)."""
    counts = []
    for n in (1, 3, 12):  # the first also creates the settings rows every chunk reads
        campaign = CampaignFactory()
        queued(campaign, n)
        with CaptureQueriesContext(connection) as queries:
            done = dispatch_chunk()
        assert done.sent == n
        counts.append(len(queries))
    assert counts[1] == counts[2]
    assert len(smtp.messages) == 16


@pytest.mark.django_db
def test_claims_are_disjoint_count_no_attempt_and_skip_paused_campaigns():
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    queued(campaign, 3)
    paused = CampaignFactory(status=CampaignStatus.PAUSED)
    waiting = queued(paused, 1)[0]
    SendFactory(status=SendStatus.QUEUED)  # a test send (no campaign): not the dispatcher's
    first = sends_claim(limit=2)
    second = sends_claim(limit=2)
    assert (len(first), len(second)) == (2, 1)
    assert not set(first) & set(second)
    assert sends_claim(limit=2) == []
    assert set(Send.objects.filter(pk__in=first + second).values_list("attempts", flat=True)) == {0}
    assert DispatchLease.objects.count() == 2  # one per claim that took something
    assert status(waiting) == (SendStatus.QUEUED, "", 0)


@pytest.mark.django_db
def test_server_down_claims_nothing_opens_the_circuit_then_everything_goes_once(smtp, settings):
    campaign = CampaignFactory()
    sends = queued(campaign, 4)
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nothing listens here

    done = dispatch_chunk()

    assert (done.claimed, done.released, done.sent, done.circuit_open) == (4, 4, 0, True)
    assert list(Send.objects.order_by().values_list("status", "attempts").distinct()) == [
        ("queued", 0)
    ]
    assert DispatchLease.objects.count() == 0
    circuit = MailCircuit.load()
    assert circuit.failures == 1
    assert "ConnectionRefusedError" in circuit.last_error
    assert 4 <= (circuit.open_until - circuit.opened_at).total_seconds() <= 6
    # While it is open, dispatchers return at once without claiming or connecting.
    settings.EMAIL_PORT = port
    done = dispatch_chunk()
    assert (done.circuit_open, done.claimed) == (True, 0)
    assert smtp.messages == []
    # Once the pause is over one probe goes, delivers, and closes the circuit.
    done = dispatch_chunk(now=circuit.open_until + timedelta(seconds=1))
    assert (done.claimed, done.sent) == (4, 4)
    assert MailCircuit.load().failures == 0
    assert sorted(message_ids(smtp)) == sorted(
        Send.objects.filter(pk__in=[s.pk for s in sends]).values_list("message_id", flat=True)
    )
    assert set(Send.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_the_circuit_lets_one_probe_through_and_doubles_its_pause():
    now = timezone.now()
    first = circuit_trip(error="down", now=now)
    second = circuit_trip(error="down", now=now)
    assert 4 <= (first - now).total_seconds() <= 6
    assert 8 <= (second - now).total_seconds() <= 12
    assert not circuit_pass(now=now)
    later = second + timedelta(seconds=1)
    assert [circuit_pass(now=later) for _ in range(3)] == [True, False, False]


@pytest.mark.django_db
def test_a_4xx_answer_defers_that_send_alone_with_backoff_and_jitter(smtp):
    campaign = CampaignFactory()
    first, *rest = queued(campaign, 3)
    smtp.refuse[first.learner.email] = "451 Try again later"
    before = timezone.now()

    done = dispatch_chunk()

    assert (done.deferred, done.sent, done.released) == (1, 2, 0)
    first.refresh_from_db()
    assert (first.status, first.attempts) == (SendStatus.QUEUED, 1)
    assert first.status_reason.startswith("deferred: SMTPRecipientsRefused")
    assert before + retry_delay(1) <= first.scheduled_for <= timezone.now() + retry_delay(1) * 1.25
    assert retry_delay(1) == timedelta(minutes=1)
    assert retry_delay(4) == timedelta(minutes=8)
    assert retry_delay(20) == timedelta(hours=6)
    assert dispatch_chunk().claimed == 0  # it waits for its time
    del smtp.refuse[first.learner.email]
    done = dispatch_chunk(now=first.scheduled_for)
    assert (done.claimed, done.sent) == (1, 1)
    assert status(first) == (SendStatus.SENT, "", 2)
    assert len(smtp.messages) == 3


@pytest.mark.django_db
def test_recovery_takes_only_expired_leases():
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    untouched, handed, live, legacy = queued(campaign, 4)
    now = timezone.now()
    dead = DispatchLease.objects.create(
        id=uuid.uuid4(), worker="gone:1", claimed_at=now, expires_at=now - timedelta(seconds=1)
    )
    alive = DispatchLease.objects.create(
        id=uuid.uuid4(), worker="busy:2", claimed_at=now, expires_at=now + timedelta(seconds=30)
    )
    Send.objects.filter(pk=untouched.pk).update(status="sending", lease=dead.pk, claimed_at=now)
    Send.objects.filter(pk=handed.pk).update(
        status="sending", lease=dead.pk, claimed_at=now, handoff_at=now
    )
    # Claimed 20 minutes ago but its lease is renewed: its worker is still sending.
    Send.objects.filter(pk=live.pk).update(
        status="sending", lease=alive.pk, claimed_at=now - timedelta(minutes=20), handoff_at=now
    )
    Send.objects.filter(pk=legacy.pk).update(
        status="sending", lease=None, claimed_at=now - timedelta(minutes=11)
    )

    assert sends_recover(now=now) == {"requeued": 2, "unknown": 1, "sent": 0, "leases": 1}

    assert dict(Send.objects.values_list("pk", "status")) == {
        untouched.pk: SendStatus.QUEUED,
        handed.pk: SendStatus.FAILED,
        live.pk: SendStatus.SENDING,
        legacy.pk: SendStatus.QUEUED,
    }
    assert Send.objects.get(pk=handed.pk).status_reason == UNKNOWN
    assert list(DispatchLease.objects.values_list("pk", flat=True)) == [alive.pk]
    assert sends_recover(now=now) == {"requeued": 0, "unknown": 0, "sent": 0, "leases": 0}


@pytest.mark.django_db
def test_recovery_records_a_dead_workers_earlier_hand_overs_as_sent():
    """A worker marks a message only once it knows the previous one's outcome, and writes
    any outcome but *sent* with that mark: of a dead lease's handed-over rows, the last (its
    highest id) is unknown, the ones before it left."""
    ExperimentSettingsFactory(global_holdout_percent=0)
    campaign = CampaignFactory()
    first, second, last, never = queued(campaign, 4)
    now = timezone.now()
    dead = DispatchLease.objects.create(
        id=uuid.uuid4(), worker="gone:1", claimed_at=now, expires_at=now - timedelta(seconds=1)
    )
    for number, send in enumerate([first, second, last]):
        Send.objects.filter(pk=send.pk).update(
            status="sending",
            lease=dead.pk,
            claimed_at=now,
            handoff_at=now + timedelta(seconds=number),
            message_id=f"<m{number}@test>",
            attempts=1,
        )
    Send.objects.filter(pk=never.pk).update(status="sending", lease=dead.pk, claimed_at=now)

    assert sends_recover(now=now) == {"requeued": 1, "unknown": 1, "sent": 2, "leases": 1}

    rows = {
        pk: (status, reason, sent_at, provider)
        for pk, status, reason, sent_at, provider in Send.objects.values_list(
            "pk", "status", "status_reason", "sent_at", "provider_message_id"
        )
    }
    assert rows == {
        first.pk: (SendStatus.SENT, "", now, "<m0@test>"),
        second.pk: (SendStatus.SENT, "", now + timedelta(seconds=1), "<m1@test>"),
        last.pk: (SendStatus.FAILED, UNKNOWN, None, ""),
        never.pk: (SendStatus.QUEUED, "", None, ""),
    }
    assert sorted(SendEvent.objects.values_list("send_id", "kind")) == sorted(
        [(first.pk, "sent"), (second.pk, "sent"), (last.pk, "failed")]
    )
    assert Send.objects.filter(lease__isnull=False).count() == 0
    assert sends_recover(now=now) == {"requeued": 0, "unknown": 0, "sent": 0, "leases": 0}


@pytest.mark.django_db
def test_a_chunk_writes_its_sent_rows_at_its_end_and_each_other_outcome_before_the_next_mark(
    smtp,
):
    """While a chunk is sent, a delivered message's row is still *sending* (its record is the
    next message's mark); a refused one is failed before the next message is handed over."""
    campaign = CampaignFactory()
    sends = queued(campaign, 4)
    smtp.refuse[sends[1].learner.email] = "550 No such user"
    seen = {}

    def watch(send):
        seen[send.pk] = dict(
            Send.objects.filter(pk__in=[s.pk for s in sends]).values_list("pk", "status")
        )

    done = dispatch_chunk(on_handoff=watch)

    assert (done.sent, done.failed) == (3, 1)
    a, b, c, d = (s.pk for s in sends)
    # When the second was handed over, the first had left (not written: the mark records it);
    # the second's failure was written with the third's mark, the first's outcome with it.
    assert seen[b] == {a: "sending", b: "sending", c: "sending", d: "sending"}
    assert seen[c] == {a: "sent", b: "failed", c: "sending", d: "sending"}
    assert [status(s)[0] for s in sends] == ["sent", "failed", "sent", "sent"]
    assert Send.objects.filter(lease__isnull=False).count() == 0
    assert sorted(message_ids(smtp)) == sorted(
        Send.objects.filter(status="sent").values_list("message_id", flat=True)
    )


@pytest.mark.django_db
def test_a_worker_that_lost_its_lease_stops_before_sending(smtp):
    """Frozen past its lease (here: the lease expires under it and recovery runs, as another
    machine's beat would): the worker finishes the message it had handed over and sends
    nothing else; the others go once, from the queue."""
    campaign = CampaignFactory()
    sends = queued(campaign, 5)

    def frozen(send):
        if send.pk == sends[1].pk:
            DispatchLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
            # sends[0] left before sends[1] was marked: recorded as sent by recovery.
            assert sends_recover() == {"requeued": 3, "unknown": 1, "sent": 1, "leases": 1}

    done = dispatch_chunk(on_handoff=frozen)

    assert (done.sent, done.lease_lost) == (2, True)
    assert len(smtp.messages) == 2
    # The one handed over when recovery ran reached the server: recorded as sent after all.
    assert [status(s)[0] for s in sends[:2]] == [SendStatus.SENT, SendStatus.SENT]
    assert [status(s)[0] for s in sends[2:]] == [SendStatus.QUEUED] * 3
    assert dispatch_chunk().sent == 3
    ids = message_ids(smtp)
    assert len(ids) == len(set(ids)) == 5


@pytest.mark.django_db
def test_a_poison_send_fails_alone_with_its_reason(smtp):
    campaign = CampaignFactory()
    good = queued(campaign, 2)
    broken = MessageTemplateVersionFactory(
        template=MessageTemplateFactory(),
        number=1,
        content={
            "en": {
                "subject": "Hi",
                "preheader": "",
                "html": "<p>{{ learner.name | slice: 'x' }}</p>",
                "text": "",
                "html_compiled": "<p>{{ learner.name | slice: 'x' }}</p>",
                "text_compiled": "x\n",
            }
        },
    )
    poison = queued(campaign, 1)[0]
    Send.objects.filter(pk=poison.pk).update(template_version=broken, occurrence_key="p")
    good += queued(campaign, 1)  # after the poison one in the chunk

    done = dispatch_chunk()

    assert (done.claimed, done.sent, done.failed) == (4, 3, 1)
    poison.refresh_from_db()
    assert poison.status == SendStatus.FAILED
    assert poison.status_reason.startswith("template: ")
    assert poison.attempts == 0  # nothing was handed to the server
    assert [status(s)[0] for s in good] == [SendStatus.SENT] * 3
    assert len(smtp.messages) == 3
    assert dispatch_chunk().claimed == 0


@pytest.mark.django_db
def test_a_send_whose_context_cannot_be_built_fails_alone(smtp, monkeypatch):
    """One learner's data breaks the context builder (here: it raises for that learner):
    the chunk's contexts are built again one by one, that send fails with its reason, and the
    sends before and after it are delivered."""
    campaign = CampaignFactory()
    sends = queued(campaign, 3)
    poison = sends[1]
    real = contexts.contexts_build

    def build(*, requests, **kwargs):
        if any(r.learner.pk == poison.learner_id for r in requests):
            raise ValueError("usage figures are not numbers")
        return real(requests=requests, **kwargs)

    monkeypatch.setattr(contexts, "contexts_build", build)

    done = dispatch_chunk(now=MORNING)

    assert (done.claimed, done.sent, done.failed) == (3, 2, 1)
    poison.refresh_from_db()
    assert (poison.status, poison.status_reason, poison.attempts) == (
        SendStatus.FAILED,
        "context: ValueError: usage figures are not numbers",
        0,
    )
    assert [status(s) for s in (sends[0], sends[2])] == [(SendStatus.SENT, "", 1)] * 2
    assert sorted(m["To"] for m in smtp.messages) == sorted(
        s.learner.email for s in (sends[0], sends[2])
    )


@pytest.mark.django_db
def test_a_send_whose_message_cannot_be_built_fails_alone(smtp):
    """An address with a newline in it (a header injection, were it written) cannot be put on
    the envelope: that send fails while its message is built — nothing handed over, no
    attempt counted — and the rest of the chunk goes."""
    campaign = CampaignFactory()
    sends = queued(campaign, 3)
    poison = sends[1]
    Send.objects.filter(pk=poison.pk).update(to_email="ann@example.org\nBcc: all@example.org")

    done = dispatch_chunk(now=MORNING)

    assert (done.claimed, done.sent, done.failed) == (3, 2, 1)
    poison.refresh_from_db()
    assert (poison.status, poison.attempts, poison.handoff_at, poison.message_id) == (
        SendStatus.FAILED,
        0,
        None,
        "",
    )
    assert poison.status_reason == (
        "message: ValueError: Invalid address; only ann@example.org\nBcc could be parsed from "
        '"ann@example.org\nBcc: all@example.org"'
    )
    assert [status(s) for s in (sends[0], sends[2])] == [(SendStatus.SENT, "", 1)] * 2
    assert len(smtp.messages) == 2
    assert all("all@example.org" not in str(e.rcpt_tos) for e in smtp.envelopes)


@pytest.mark.django_db
def test_a_campaign_that_keeps_failing_pauses_itself_and_says_why(smtp):
    GuardrailPolicyFactory(pause_after_failures=3)
    campaign = CampaignFactory()
    other = CampaignFactory()
    version = campaign.email_template.versions.get()
    version.content = {
        "en": {
            "subject": "{{ course.modules_completed }}",
            "preheader": "",
            "html": "<p>x</p>",
            "text": "",
            "html_compiled": "<p>x</p>",
            "text_compiled": "x\n",
        }
    }
    version.save()
    failing = queued(campaign, 6)
    fine = queued(other, 2)

    done = dispatch_chunk()

    assert (done.failed, done.sent, done.paused) == (3, 2, [campaign.pk])
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert campaign.paused_reason.startswith("paused after 3 sends in a row failed: template:")
    assert "course" in campaign.paused_reason
    assert [status(s)[0] for s in failing] == [SendStatus.FAILED] * 3 + [SendStatus.QUEUED] * 3
    assert [status(s)[0] for s in fine] == [SendStatus.SENT] * 2
    assert dispatch_chunk().claimed == 0  # a paused campaign's sends wait
    assert Campaign.objects.get(pk=other.pk).failure_streak == 0


@pytest.mark.django_db
def test_a_delivery_breaks_the_failure_streak(smtp):
    GuardrailPolicyFactory(pause_after_failures=2)
    campaign = CampaignFactory()
    sends = queued(campaign, 3)
    smtp.refuse[sends[0].learner.email] = "550 No such user"  # one recipient, not a streak
    Send.objects.filter(pk=sends[1].pk).update(to_email="")
    dispatch_chunk()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.failure_streak) == (CampaignStatus.ACTIVE, 0)


@pytest.mark.django_db
def test_a_campaign_whose_messages_the_server_refuses_pauses_itself(smtp):
    """A permanent refusal of the message itself (5xx to DATA: the content is rejected) is
    about what the campaign sends: three in a row pause it. Refused recipients (one address
    each) never make a streak."""
    GuardrailPolicyFactory(pause_after_failures=3)
    campaign = CampaignFactory()
    refused = queued(campaign, 4)
    smtp.refuse_data = "554 5.7.1 Message rejected as spam"

    done = dispatch_chunk(now=MORNING)

    assert (done.failed, done.sent, done.paused) == (3, 0, [campaign.pk])
    campaign.refresh_from_db()
    reason = "SMTPDataError: (554, b'5.7.1 Message rejected as spam')"
    assert (campaign.status, campaign.paused_reason) == (
        CampaignStatus.PAUSED,
        f"paused after 3 sends in a row failed: {reason}",
    )
    assert [status(s)[0] for s in refused] == [SendStatus.FAILED] * 3 + [SendStatus.QUEUED]
    assert refused[0].status_reason == reason

    smtp.refuse_data = ""
    other = CampaignFactory()
    unknown = queued(other, 4)
    for send in unknown:
        smtp.refuse[send.learner.email] = "550 5.1.1 No such user"
    assert dispatch_chunk(now=MORNING).failed == 4
    other.refresh_from_db()
    assert (other.status, other.failure_streak, other.failure_reason) == (
        CampaignStatus.ACTIVE,
        0,
        "",
    )


@pytest.mark.django_db
def test_a_dead_workers_sends_move_within_two_minutes_as_configured(settings):
    """Issue 16: recovery within 2 minutes of a worker's death. A dead worker's lease expires
    ``DISPATCH_LEASE_SECONDS`` after its last renewal and beat's ``recover-sends`` runs every
    its schedule's seconds, so the sends move within their sum; the heartbeat renews well
    inside the lease (the fault tests prove the mechanism with a 3 s lease)."""
    beat = settings.CELERY_BEAT_SCHEDULE["recover-sends"]
    assert beat["task"] == "campaigns.tasks.recover_sends"
    assert lease_length() == timedelta(seconds=settings.DISPATCH_LEASE_SECONDS)
    assert lease_length() + timedelta(seconds=beat["schedule"]) <= timedelta(seconds=120)
    assert heartbeat_interval() < lease_length()
    assert heartbeat_interval() == lease_length() / 4


def _in_london(hour: int, minute: int = 0, second: int = 0, day: int = 15) -> datetime:
    return datetime(2026, 6, day, hour - 1, minute, second, tzinfo=UTC)  # BST = UTC+1


@pytest.mark.django_db
def test_quiet_hours_hold_at_the_moment_of_sending(smtp):
    """A backlog send scheduled for 20:59 that a busy dispatcher reaches at 21:00:30 London
    waits for 08:00; nothing leaves, no attempt is counted."""
    campaign = CampaignFactory()
    send = queued(campaign, 1, quiet=True, scheduled_for=_in_london(20, 59))[0]

    done = dispatch_chunk(now=_in_london(21, 0, 30))

    assert (done.claimed, done.deferred, done.sent) == (1, 1, 0)
    assert smtp.messages == []
    send.refresh_from_db()
    assert (send.status, send.attempts) == (SendStatus.QUEUED, 0)
    assert send.scheduled_for == _in_london(8, day=16)
    assert send.status_reason == "deferred: quiet hours in the learner's zone"


@pytest.mark.django_db
def test_a_retry_never_lands_in_quiet_hours(smtp):
    """A 451 at 20:58:30 London: its retry (1–1.25 min later) would fall at 20:59:30–20:59:45,
    allowed; one at 20:59:50 would fall after 21:00 and waits for 08:00."""
    campaign = CampaignFactory()
    early, late = queued(campaign, 2, quiet=True)
    smtp.refuse[early.learner.email] = smtp.refuse[late.learner.email] = "451 Later"
    Send.objects.filter(pk=late.pk).update(scheduled_for=_in_london(20, 59, 50))

    dispatch_chunk(now=_in_london(20, 58, 30))
    early.refresh_from_db()
    assert _in_london(20, 59, 30) <= early.scheduled_for <= _in_london(20, 59, 50)
    dispatch_chunk(now=_in_london(20, 59, 50))
    late.refresh_from_db()
    assert (late.status, late.attempts) == (SendStatus.QUEUED, 1)
    assert late.scheduled_for == _in_london(8, day=16)
    assert smtp.messages == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overnight", "rule", "reason"),
    [
        ("ticket", Rule.OPEN_TICKET, None),
        ("payment", Rule.PAYMENT_FAILED, None),
        ("refund", Rule.REFUND, None),
        ("declined", Rule.DECLINED, None),
        ("bought", Rule.BOUGHT, None),
        ("unsubscribed", Rule.NOT_REACHABLE, "unsubscribed from all marketing"),
        ("at_risk", Rule.AT_RISK, None),
        ("low_lps", Rule.LOW_LPS, None),
        ("rfm", Rule.RFM_DO_NOT_PITCH, f"{Rule.RFM_DO_NOT_PITCH.label}: Recently churned"),
        ("owns", Rule.OWNS_PRODUCT, None),
        ("signed_up", Rule.ONBOARDING, None),
        ("moment_closed", Rule.OFFER_FREE_MOMENT, None),
        ("offer_switched_off", Rule.OFFER_INACTIVE, f"{Rule.OFFER_INACTIVE.label}: SQL 2 offer"),
    ],
)
def test_guardrails_are_checked_again_when_a_deferred_offer_leaves(smtp, overnight, rule, reason):
    """Queued at 23:00 for 08:00; at 07:00 something happens; at 08:00 nothing leaves and the
    send records the rule that stopped it. (The learner joined two years ago, so a premium
    upsell is no onboarding issue until the sync says they signed up 10 days ago.)"""
    offer = OfferFactory(name="SQL 2 offer")
    campaign = CampaignFactory(offer=offer, premium_upsell=True)
    send = queued(campaign, 1, quiet=True, scheduled_for=_in_london(8, day=16), offer=offer)[0]
    learner = send.learner
    Learner.objects.filter(pk=learner.pk).update(created_at=_in_london(8, day=16) - YEARS_2)
    learner.refresh_from_db()
    seven = _in_london(7, day=16)
    if overnight == "ticket":
        learner.score.flag_open_ticket = True
    elif overnight == "payment":
        learner.score.flag_payment_failed = True
    elif overnight == "refund":
        learner.score.flag_refund = True
    elif overnight == "at_risk":
        learner.score.stage = "at_risk"
    elif overnight == "low_lps":
        learner.score.lps = 39.5
    elif overnight == "rfm":
        learner.score.rfm_segment = "Recently churned"
    elif overnight == "declined":
        EventFactory(learner=learner, kind="offer_declined", occurred_at=seven)
    elif overnight == "bought":
        OrderFactory(learner=learner, placed_at=seven)
    elif overnight == "owns":
        OrderLineFactory(
            order=OrderFactory(learner=learner, placed_at=seven), product=offer.product
        )
    elif overnight == "unsubscribed":
        learner.unsubscribed_at = seven
        learner.save()
    elif overnight == "signed_up":
        learner.signed_up_at = seven - timedelta(days=10)
        learner.save()
    elif overnight == "moment_closed":
        JourneyMoment.objects.filter(pk=campaign.moment_id).update(offers_allowed=False)
    elif overnight == "offer_switched_off":
        Offer.objects.filter(pk=offer.pk).update(is_active=False)
    learner.score.save()
    DirtyLearner.objects.all().delete()  # the scoring pass at 07:00:05 took the new data

    done = dispatch_chunk(now=_in_london(8, 0, 1, day=16))

    assert (done.claimed, done.suppressed, done.sent) == (1, 1, 0)
    assert smtp.messages == []
    send.refresh_from_db()
    assert (send.status, send.rule, send.attempts) == (SendStatus.SUPPRESSED, rule, 0)
    assert send.status_reason == f"at sending: {reason or Rule(rule).label}"


@pytest.mark.django_db
def test_the_same_deferred_offer_leaves_when_nothing_happened_overnight(smtp):
    """The setting of the guardrail test above, untouched: it is sent (each case there is
    stopped by its own change, not by the setting)."""
    offer = OfferFactory(name="SQL 2 offer")
    campaign = CampaignFactory(offer=offer, premium_upsell=True)
    send = queued(campaign, 1, quiet=True, scheduled_for=_in_london(8, day=16), offer=offer)[0]
    Learner.objects.filter(pk=send.learner_id).update(created_at=_in_london(8, day=16) - YEARS_2)
    DirtyLearner.objects.all().delete()
    done = dispatch_chunk(now=_in_london(8, 0, 1, day=16))
    assert (done.claimed, done.suppressed, done.sent) == (1, 0, 1)
    assert status(send) == (SendStatus.SENT, "", 1)


@pytest.mark.django_db
def test_at_sending_re_engagement_skips_at_risk_and_low_lps_but_not_the_offer_guardrails(smtp):
    """Seeds 000/003 at the moment of sending: the at-risk, low-LPS learner a re-engagement
    email is for gets it; one that carries an offer is still stopped by the offer guardrails
    (RFM do-not-pitch, owns it, and an inactive offer)."""
    come_back = CampaignFactory(name="Come back", purpose=Purpose.REENGAGEMENT)
    offer = OfferFactory(name="Certificate")
    with_offer = CampaignFactory(
        name="Come back, with a certificate",
        purpose=Purpose.REENGAGEMENT,
        offer=offer,
        moment__slug="milestone",
    )
    plain = queued(come_back, 1)[0]
    churned, owner, offered = queued(with_offer, 3, offer=offer)
    for send in (plain, churned, owner, offered):
        LearnerScore.objects.filter(learner=send.learner).update(stage="at_risk", lps=12.0)
    LearnerScore.objects.filter(learner=churned.learner).update(rfm_segment="Recently churned")
    OrderLineFactory(order=OrderFactory(learner=owner.learner), product=offer.product)
    switched_off = queued(with_offer, 1, offer=OfferFactory(name="Old", is_active=False))[0]
    LearnerScore.objects.filter(learner=switched_off.learner).update(stage="at_risk", lps=12.0)
    DirtyLearner.objects.all().delete()

    done = dispatch_chunk(now=MORNING)

    assert (done.claimed, done.sent, done.suppressed) == (5, 2, 3)
    assert status(plain) == (SendStatus.SENT, "", 1)
    assert status(offered) == (SendStatus.SENT, "", 1)
    assert status(churned) == (SendStatus.SUPPRESSED, Rule.RFM_DO_NOT_PITCH, 0)
    assert status(owner) == (SendStatus.SUPPRESSED, Rule.OWNS_PRODUCT, 0)
    assert status(switched_off) == (SendStatus.SUPPRESSED, Rule.OFFER_INACTIVE, 0)
    assert switched_off.status_reason == f"at sending: {Rule.OFFER_INACTIVE.label}: Old"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("signed_up_days", "enrolled_days", "created_days", "expected"),
    [
        (10, 400, 400, (SendStatus.SUPPRESSED, Rule.ONBOARDING, 0)),  # the synced sign-up
        (None, 10, 400, (SendStatus.SUPPRESSED, Rule.ONBOARDING, 0)),  # else the first course
        (None, 400, 10, (SendStatus.SENT, "", 1)),  # an import is not an onboarding
        (400, 10, 10, (SendStatus.SENT, "", 1)),  # the sign-up wins over a new enrolment
    ],
)
def test_at_sending_onboarding_counts_from_the_sign_up_else_the_first_enrolment(
    smtp, signed_up_days, enrolled_days, created_days, expected
):
    campaign = CampaignFactory(premium_upsell=True)
    send = queued(campaign, 1)[0]
    days = lambda n: MORNING - timedelta(days=n)  # noqa: E731
    Learner.objects.filter(pk=send.learner_id).update(
        signed_up_at=None if signed_up_days is None else days(signed_up_days),
        created_at=days(created_days),
    )
    EnrollmentFactory(learner=send.learner, enrolled_at=days(enrolled_days))
    DirtyLearner.objects.all().delete()
    dispatch_chunk(now=MORNING)
    assert status(send) == expected


@pytest.mark.django_db
def test_a_learner_whose_new_data_is_not_scored_yet_waits(smtp):
    campaign = CampaignFactory()
    send = queued(campaign, 1)[0]
    DirtyLearnerFactory(learner=send.learner, marked_at=send.created_at + timedelta(seconds=1))
    done = dispatch_chunk(now=MORNING)
    assert (done.deferred, done.sent) == (1, 0)
    send.refresh_from_db()
    assert (send.status, send.attempts) == (SendStatus.QUEUED, 0)
    assert timedelta(seconds=59) <= send.scheduled_for - MORNING <= timedelta(seconds=62)


@pytest.mark.django_db
def test_caps_count_what_left_meanwhile_and_never_test_sends(smtp):
    """Cap 2 per 7 days: two offers left this week (one 3 days ago, one an hour ago, after
    this send was queued); a third queued for now is stopped when it would leave. Another
    learner has one real send 3 days ago and a test send to the marketer an hour ago: were
    the test send counted, that would be 2 of 2 — it is not, so theirs leaves."""
    GuardrailPolicyFactory(email_cap=2, email_cap_day=0, email_cap_week=0)
    campaign = CampaignFactory()
    capped, free = queued(campaign, 2)
    for learner, ago in ((capped.learner, timedelta(days=3)), (free.learner, timedelta(days=3))):
        SendFactory(
            learner=learner, campaign=CampaignFactory(), status="sent", sent_at=MORNING - ago
        )
    SendFactory(
        learner=capped.learner, campaign=CampaignFactory(), status="sent", sent_at=MORNING - HOUR
    )
    SendFactory(learner=free.learner, is_test=True, status="sent", sent_at=MORNING - HOUR)

    done = dispatch_chunk(now=MORNING)

    assert (done.suppressed, done.sent) == (1, 1)
    assert status(capped) == (SendStatus.SUPPRESSED, Rule.CAP_ROLLING, 0)
    assert status(free) == (SendStatus.SENT, "", 1)


@pytest.mark.django_db
def test_a_test_send_today_does_not_use_up_the_day_cap_at_sending(smtp):
    GuardrailPolicyFactory(email_cap=0, email_cap_day=1, email_cap_week=0)
    send = queued(CampaignFactory(), 1)[0]
    SendFactory(learner=send.learner, is_test=True, status="sent", sent_at=MORNING - HOUR)
    assert dispatch_chunk(now=MORNING).sent == 1
    assert status(send) == (SendStatus.SENT, "", 1)


@pytest.mark.django_db
def test_the_day_cap_counts_sends_of_the_same_chunk(smtp):
    GuardrailPolicyFactory(email_cap=0, email_cap_day=1, email_cap_week=0)
    first, second = queued(CampaignFactory(), 1) + queued(CampaignFactory(), 1)
    Send.objects.filter(pk=second.pk).update(learner=first.learner)
    second.refresh_from_db()
    done = dispatch_chunk(now=MORNING)
    assert (done.sent, done.suppressed) == (1, 1)
    assert status(second) == (SendStatus.SUPPRESSED, Rule.CAP_DAY, 0)


def _worker(queue: str, port: int, **env: str):
    return worker_start(
        queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
        **env,
    )


def _wait(condition, timeout: float) -> bool:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_deliver_each_send_exactly_once(slow_sink):
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
    assert set(Send.objects.values_list("attempts", flat=True)) == {1}


def test_policy_defaults_pause_after_ten():
    assert GuardrailPolicy._meta.get_field("pause_after_failures").default == 10


@pytest.mark.django_db
def test_nothing_due_opens_no_connection_and_writes_no_mail_file(settings, tmp_path):
    """``make run`` writes mail to files: a dispatch tick with nothing due used to leave an
    empty file every 30 s."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    queued(CampaignFactory(), 1, scheduled_for=timezone.now() + timedelta(hours=1))
    assert dispatch_chunk().claimed == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_a_failure_is_logged_by_kind_without_the_recipient(smtp, caplog):
    campaign = CampaignFactory()
    send = queued(campaign, 1)[0]
    smtp.refuse[send.learner.email] = "550 No such user here"
    with caplog.at_level("WARNING", logger="campaigns.dispatch"):
        assert dispatch_chunk().failed == 1
    assert [r.getMessage() for r in caplog.records if r.name == "campaigns.dispatch"] == [
        f"send {send.pk} of campaign {campaign.pk} failed (SMTPRecipientsRefused)"
    ]
    assert not [r for r in caplog.records if send.learner.email in r.getMessage()]


@pytest.mark.django_db
def test_a_mark_whose_message_never_left_goes_back_to_the_queue(smtp):
    """The worker fails between marking a message and handing it over (here: the fault hook
    raises; in the fault tests, a connection cut at COMMIT that the server committed): the
    row is requeued with its attempt given back, not left *sending* under a deleted lease."""
    campaign = CampaignFactory()
    first, second = queued(campaign, 2)

    def cut(send):
        if send.pk == second.pk:
            raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        dispatch_chunk(on_handoff=cut)

    assert status(first) == (SendStatus.SENT, "", 1)
    second.refresh_from_db()
    assert (second.status, second.attempts, second.handoff_at, second.lease) == (
        SendStatus.QUEUED,
        0,
        None,
        None,
    )
    assert DispatchLease.objects.count() == 0
    assert len(smtp.messages) == 1
    assert dispatch_chunk().sent == 1
    assert len(smtp.messages) == len(set(message_ids(smtp))) == 2


@pytest.mark.django_db
def test_the_per_send_statements_find_their_row_by_primary_key_after_a_claim():
    """Statistics taken while the rows were queued promise one *sending* row: written as
    ``status = 'sending'``, the hand-over mark and the ledger's writes read the whole
    partial index of the sending rows for each send (0.7 ms of PostgreSQL's CPU an email
    in a 1,000-email chunk, bench/delivery.py). They must stay primary-key lookups."""
    campaign = CampaignFactory()
    sends = queued(campaign, 120)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_send")
    lease = uuid.uuid4()
    now = timezone.now()
    DispatchLease.objects.create(
        id=lease, worker="test", claimed_at=now, expires_at=now + lease_length()
    )
    Send.objects.filter(pk__in=[s.pk for s in sends]).update(
        status=SendStatus.SENDING, lease=lease, claimed_at=now
    )
    target = sends[60].pk

    def plan(sql: str, params) -> str:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())

    mark = plan(
        _HAND_OVER.format(lease=DispatchLease._meta.db_table, send=Send._meta.db_table),
        {
            "lease": lease,
            "now": now,
            "expires": now + lease_length(),
            "send_id": target,
            "message_id": "<m@x>",
            "subject": "s",
            "locale": "en",
            "to": "a@example.org",
        },
    )
    ledger_sql, ledger_params = (
        Send.objects.filter(status_now(SendStatus.SENDING), pk=target, handoff_at=None)
        .values("pk")
        .query.sql_with_params()
    )
    for text in (mark, plan(ledger_sql, ledger_params)):
        assert "campaigns_send_pkey" in text, text
        assert "send_sending_idx" not in text, text
