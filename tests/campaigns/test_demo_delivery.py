"""The demo's sends are delivered by the same code a customer's are ("preview is send"): seed
the demo as ``seed_demo`` does, evaluate its campaigns and dispatch every email to a real SMTP
server, following the clock through every learner's quiet hours."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest
from django.db.models import Min

from campaigns.dispatch import dispatch_chunk
from campaigns.evaluate import campaigns_evaluate
from campaigns.models import Campaign, CampaignStatus, Rule, Send, SendStatus
from expansion.commerce.affinity import affinity_refresh
from expansion.demo.data import demo_seed
from learners.models import DirtyLearner
from learners.scoring import score_learners

pytestmark = pytest.mark.django_db

# The demo's "today" (demo_seed: 09:00 UTC on the anchor date): its learners live in eight
# zones from Los Angeles to Sydney, so no one instant is outside everyone's quiet hours.
ANCHOR = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed(*, learners: int = 300) -> None:
    """What ``seed_demo`` does, at the demo's own clock (fewer learners, for speed)."""
    demo_seed(learners=learners, anchor=ANCHOR)
    score_learners(full=True, as_of=NOW)
    affinity_refresh(now=NOW)


def queued_emails():
    return Send.objects.filter(status=SendStatus.QUEUED, channel="email", campaign__isnull=False)


def dispatch_everything(*, start: datetime) -> dict[str, int]:
    """``dispatch_chunk`` until nothing is claimed, then on at the time the next queued email
    is due (quiet hours end at a different instant in each zone), until none is queued."""
    clock = start
    totals = {"claimed": 0, "sent": 0, "failed": 0, "suppressed": 0, "rounds": 0}
    for _ in range(100):
        done = dispatch_chunk(now=clock)
        totals["rounds"] += 1
        for name in ("claimed", "sent", "failed", "suppressed"):
            totals[name] += getattr(done, name)
        if done.claimed:
            continue
        due = queued_emails().aggregate(at=Min("scheduled_for"))["at"]
        if due is None:
            break
        assert due > clock, f"a due email was not claimed at {clock}"
        clock = due
    totals["clock"] = clock  # type: ignore[assignment]
    return totals


def assert_all_delivered(smtp, emails: int, totals: dict) -> None:
    assert emails > 0
    assert (totals["claimed"], totals["sent"], totals["failed"], totals["suppressed"]) == (
        emails,
        emails,
        0,
        0,
    ), Send.objects.exclude(status=SendStatus.SENT).values_list("status", "status_reason")[:5]
    assert len(smtp.messages) == emails
    assert queued_emails().count() == 0
    assert Send.objects.filter(channel="email", status=SendStatus.SENT).count() == emails
    assert Send.objects.filter(channel="email", status=SendStatus.FAILED).count() == 0
    recipients = sorted(m["To"] for m in smtp.messages)
    assert recipients == sorted(
        Send.objects.filter(channel="email", status=SendStatus.SENT).values_list(
            "to_email", flat=True
        )
    )
    for message in smtp.messages:
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "{{" not in text


def test_the_demo_s_campaign_emails_are_all_delivered(smtp):
    # A thousand learners: enough for the cross-sell to find graduates in the Americas, who
    # are asleep at the demo's 09:00 UTC (three hundred find three, all awake).
    seed(learners=1000)
    campaigns_evaluate(now=NOW)
    # The scoring worker has seen everyone the evaluation marked (a learner whose data is not
    # scored yet waits for it at sending).
    score_learners(as_of=NOW)
    assert DirtyLearner.objects.count() == 0
    emails = queued_emails().count()
    later = set(
        queued_emails()
        .filter(scheduled_for__gt=NOW)
        .values_list("learner__time_zone", "scheduled_for")
        .distinct()
    )
    in_app = Send.objects.filter(channel="in_app", status=SendStatus.QUEUED).count()

    totals = dispatch_everything(start=NOW)

    assert_all_delivered(smtp, emails, totals)
    # The learners asleep at 09:00 UTC (the Americas) were queued for 08:00 their time, and
    # their emails left then; everyone else's at once.
    eight_am = {
        "America/Sao_Paulo": datetime(2026, 3, 2, 11, 0, tzinfo=UTC),
        "America/New_York": datetime(2026, 3, 2, 13, 0, tzinfo=UTC),
        "America/Los_Angeles": datetime(2026, 3, 2, 16, 0, tzinfo=UTC),
    }
    assert later
    assert later <= set(eight_am.items())
    assert totals["clock"] == max(at for _, at in later)
    assert all(
        send.sent_at >= eight_am.get(send.learner.time_zone, NOW)
        for send in Send.objects.filter(channel="email", status=SendStatus.SENT).select_related(
            "learner"
        )
    )
    # Every cross-sell email filled in from the full context (the demo used to fail every one
    # on a context with the course's title alone).
    sends = {
        send.message_id: send
        for send in Send.objects.filter(channel="email").select_related("course", "campaign")
    }
    by_campaign = Counter(sends[m["Message-ID"]].campaign.name for m in smtp.messages)
    # The cross-sell, seed 000's stall re-engagement and seed 004's usage band all deliver.
    assert set(by_campaign) == {
        "Graduates: the next course",
        "Stalled learners: pick up where you left off",
        "Teams at 70–85% of their quota",
    }, by_campaign
    for message in smtp.messages:
        send = sends[message["Message-ID"]]
        text = " ".join(message.get_body(preferencelist=("plain",)).get_content().split())
        if send.campaign.name == "Graduates: the next course":
            assert f"You've completed 8 of 8 modules of {send.course.title}." in text, text
            assert message["Subject"].strip() == f"The next step after {send.course.title}"
        elif send.campaign.name.startswith("Stalled"):
            assert message["Subject"].strip().startswith("Pick up where you left off in ")
            assert "Continue the course" in text, text
        else:
            assert "of your quota this month" in text, text
    # The demo also shows an RFM do-not-pitch stop (seed 001).
    assert Send.objects.filter(rule=Rule.RFM_DO_NOT_PITCH).exists()
    # In-app cards are not emails: they wait for the platform to ask for them.
    assert Send.objects.filter(channel="in_app", status=SendStatus.QUEUED).count() == in_app


def test_the_demo_s_draft_renewal_campaign_delivers_too(smtp):
    seed()
    Campaign.objects.filter(name="Renewal right-sizing").update(status=CampaignStatus.ACTIVE)
    campaigns_evaluate(now=NOW)
    score_learners(as_of=NOW)
    renewals = queued_emails().filter(campaign__name="Renewal right-sizing").count()
    emails = queued_emails().count()

    totals = dispatch_everything(start=NOW)

    assert renewals > 0
    assert_all_delivered(smtp, emails, totals)
    subjects = [m["Subject"].strip() for m in smtp.messages]
    assert (
        subjects.count("Your renewal is coming up — here's what you got from it lately") == renewals
    )
