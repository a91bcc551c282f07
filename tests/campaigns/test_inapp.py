"""The in-app channel through the API: the card, its tracking, and a dismissal that sticks."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.evaluate import campaigns_evaluate
from campaigns.models import Rule, Send, SendEvent
from expansion.commerce.models import Offer
from learners.models import DirtyLearner, Event
from tests.campaigns.conftest import card_send
from tests.factories.campaigns import SendFactory
from tests.factories.expansion import OfferFactory
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerScoreFactory,
    ModuleFactory,
)
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory

pytestmark = pytest.mark.django_db


def test_the_card_is_rendered_with_reason_expiry_and_tracking(api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)

    response = api.get("/api/v1/learners/ann/offers/?moment=course_completion")

    assert response.status_code == 200, response.content
    card = response.json()["offer"]
    assert card["send"] == send.pk
    assert card["title"] == "Ready for SQL Advanced, Ann?"
    # The learner reads the reason in plain words; the send keeps the marketer's.
    assert card["body_html"] == "<p>You finished SQL Basics today.</p>"
    assert card["reason"] == "You finished SQL Basics today."
    assert send.reason == "completed the final module of SQL Basics; LPS 82"
    assert card["moment"] == "course_completion"
    assert card["cta_url"].startswith("https://expansion.example.org/m/c/")
    assert card["tracking"]["dismiss"] == (
        f"https://expansion.example.org/api/v1/sends/{send.pk}/dismiss/"
    )
    expires = send.created_at + timedelta(hours=48)
    assert card["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    # Serving is read-only: the card stays queued, with no event, however often it is read.
    assert api.get("/api/v1/learners/ann/offers/?moment=course_completion").json() == {
        "offer": card
    }
    send.refresh_from_db()
    assert (send.status, send.sent_at, send.seen_at) == ("queued", None, None)
    assert SendEvent.objects.filter(send=send).count() == 0
    # Another moment has no card.
    assert api.get("/api/v1/learners/ann/offers/?moment=renewal").json() == {"offer": None}


def test_the_impression_records_the_card_sent_and_seen(api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)
    assert api.get("/api/v1/learners/ann/offers/").json()["offer"]["send"] == send.pk

    response = api.post(f"/api/v1/sends/{send.pk}/impression/", {}, format="json")

    assert response.status_code == 200
    send.refresh_from_db()
    assert response.json() == {
        "send": send.pk,
        "status": "opened",
        "seen_at": send.seen_at.isoformat().replace("+00:00", "Z"),
        "clicked_at": None,
        "dismissed_at": None,
        "dismiss_reason": "",
    }
    assert send.sent_at == send.seen_at
    events = list(SendEvent.objects.filter(send=send).values_list("kind", "at"))
    assert events == [("served", send.sent_at), ("seen", send.seen_at)]
    # A second impression changes nothing.
    api.post(f"/api/v1/sends/{send.pk}/impression/", {}, format="json")
    assert SendEvent.objects.filter(send=send).count() == 2


@pytest.mark.parametrize(
    ("kind", "body", "status", "events"),
    [
        ("click", {}, "clicked", ["served", "clicked"]),
        ("accept", {}, "clicked", ["served", "accepted"]),
        ("dismiss", {"reason": "not_relevant"}, "dismissed", ["served", "dismissed"]),
    ],
)
def test_a_report_before_any_impression_records_the_card_sent(
    api, card_setup, kind, body, status, events
):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)

    assert api.post(f"/api/v1/sends/{send.pk}/{kind}/", body, format="json").status_code == 200

    send.refresh_from_db()
    assert (send.status, send.sent_at is not None, send.seen_at) == (status, True, None)
    assert list(SendEvent.objects.filter(send=send).values_list("kind", flat=True)) == events


def test_a_click_on_the_cards_link_before_any_impression_records_it_sent(client, api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)
    card = api.get("/api/v1/learners/ann/offers/").json()["offer"]

    response = client.get(card["cta_url"].removeprefix("https://expansion.example.org"))

    assert response.status_code == 302
    send.refresh_from_db()
    assert (send.status, send.clicks, send.sent_at is not None) == ("clicked", 1, True)
    kinds = list(SendEvent.objects.filter(send=send).values_list("kind", flat=True))
    assert kinds == ["served", "clicked"]


def test_bad_feedback_on_a_queued_card_changes_nothing(api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)

    wave = api.post(f"/api/v1/sends/{send.pk}/wave/", {}, format="json")
    meh = api.post(f"/api/v1/sends/{send.pk}/dismiss/", {"reason": "meh"}, format="json")
    bare = api.post(f"/api/v1/sends/{send.pk}/dismiss/", {}, format="json")

    assert (wave.status_code, meh.status_code, bare.status_code) == (400, 400, 400)
    assert wave.json() == {
        "errors": [
            {
                "index": None,
                "field": "kind",
                "reason": "must be impression, click, accept or dismiss",
            }
        ]
    }
    assert bare.json() == {
        "errors": [
            {
                "index": None,
                "field": "reason",
                "reason": "must be one of not_now, not_relevant, too_expensive, already_have, "
                "other",
            }
        ]
    }
    send.refresh_from_db()
    assert (send.status, send.sent_at, send.dismissed_at) == ("queued", None, None)
    assert SendEvent.objects.filter(send=send).count() == 0
    assert Event.objects.count() == 0


def test_an_expired_offer_is_not_served(api, card_setup):
    campaign, version, learner = card_setup
    card_send(campaign, version, learner, created_at=timezone.now() - timedelta(hours=49))
    assert api.get("/api/v1/learners/ann/offers/").json() == {"offer": None}


def test_impression_click_and_accept(api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner, status="sent")

    for _ in range(2):
        assert (
            api.post(f"/api/v1/sends/{send.pk}/impression/", {}, format="json").status_code == 200
        )
    send.refresh_from_db()
    first_seen = send.seen_at
    assert (send.status, first_seen is not None) == ("opened", True)
    api.post(f"/api/v1/sends/{send.pk}/click/", {}, format="json")
    response = api.post(f"/api/v1/sends/{send.pk}/accept/", {}, format="json")
    assert response.json()["status"] == "clicked"
    send.refresh_from_db()
    assert (send.seen_at, send.clicks) == (first_seen, 2)
    kinds = list(SendEvent.objects.filter(send=send).values_list("kind", flat=True))
    assert kinds == ["seen", "clicked", "accepted"]  # one impression event, not two


def test_a_not_now_dismissal_suppresses_the_next_offers(api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner, status="sent")

    bad = api.post(f"/api/v1/sends/{send.pk}/dismiss/", {"reason": "meh"}, format="json")
    assert bad.status_code == 400
    assert "reason" in str(bad.json())
    assert Event.objects.filter(kind="offer_declined").count() == 0
    ok = api.post(f"/api/v1/sends/{send.pk}/dismiss/", {"reason": "not_now"}, format="json")
    assert ok.json()["status"] == "dismissed"
    api.post(f"/api/v1/sends/{send.pk}/dismiss/", {"reason": "not_now"}, format="json")
    declined = Event.objects.get(kind="offer_declined")
    assert (declined.learner, declined.properties["reason"]) == (learner, "not_now")
    assert api.get("/api/v1/learners/ann/offers/").json() == {"offer": None}

    # The next trigger for this learner is stopped by the decline guardrail.
    course = CourseFactory(title="SQL Basics")
    final = ModuleFactory(course=course, position=1, is_final=True)
    EnrollmentFactory(
        learner=learner, course=course, enrolled_at=timezone.now() - timedelta(days=60)
    )
    LearnerScoreFactory(learner=learner, lps=82.0)
    EventFactory(
        learner=learner,
        kind="module_completed",
        course=course,
        module=final,
        occurred_at=timezone.now() - timedelta(hours=1),
    )
    DirtyLearner.objects.all().delete()
    campaigns_evaluate()
    assert Send.objects.exclude(pk=send.pk).get().rule == Rule.DECLINED


def test_feedback_errors_and_scopes(api, read_api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)
    email = SendFactory(learner=learner, campaign=campaign, channel="email")
    assert api.post(f"/api/v1/sends/{send.pk}/wave/", {}, format="json").status_code == 400
    assert api.post(f"/api/v1/sends/{email.pk}/click/", {}, format="json").status_code == 404
    assert api.post("/api/v1/sends/999999/click/", {}).status_code == 404
    # Feedback needs the write scope; a read-scope key gets the card, and changes nothing.
    for kind in ("impression", "click", "accept", "dismiss"):
        refused = read_api.post(
            f"/api/v1/sends/{send.pk}/{kind}/", {"reason": "not_now"}, format="json"
        )
        assert refused.status_code == 403, kind
        assert refused.json() == {
            "errors": [
                {"index": None, "field": None, "reason": "This API key lacks the 'write' scope."}
            ]
        }
    read = read_api.get("/api/v1/learners/ann/offers/")
    assert (read.status_code, read.json()["offer"]["send"]) == (200, send.pk)
    assert api.get("/api/v1/learners/nobody/offers/").status_code == 404
    send.refresh_from_db()
    assert (send.status, send.sent_at, send.seen_at, send.clicks) == ("queued", None, None, 0)
    assert SendEvent.objects.filter(send=send).count() == 0


def test_a_card_that_cannot_render_is_skipped_and_the_next_one_is_served(api, card_setup, caplog):
    campaign, version, learner = card_setup
    fine = card_send(campaign, version, learner)
    broken_version = MessageTemplateVersionFactory(
        template=MessageTemplateFactory(channel="in_app"),
        channel="in_app",
        content={
            "en": {
                "subject": "{{ usage.plan }}",  # Ann has no plan: undefined
                "preheader": "",
                "html": "<p>x</p>",
                "text": "",
                "html_compiled": "<p>x</p>",
                "text_compiled": "x\n",
            }
        },
    )
    broken = card_send(campaign, broken_version, learner, occurrence_key="other")
    Send.objects.filter(pk=broken.pk).update(priority=200)

    with caplog.at_level(logging.WARNING, logger="campaigns.inapp"):
        response = api.get("/api/v1/learners/ann/offers/")

    assert response.status_code == 200
    assert response.json()["offer"]["send"] == fine.pk
    # A read changes nothing, not even on the card that cannot render: it is skipped and
    # logged by its send's id (never its data).
    broken.refresh_from_db()
    assert (broken.status, broken.status_reason) == ("queued", "")
    assert SendEvent.objects.count() == 0
    assert [r.getMessage() for r in caplog.records if r.name == "campaigns.inapp"] == [
        f"in-app card of send {broken.pk} cannot render (template)"
    ]


def test_a_card_whose_offer_was_switched_off_is_not_served_and_is_stopped_with_its_rule(
    api, card_setup
):
    """Issue 17 item 7: a card queued before its offer was switched off (by hand, or by a
    decision retiring its arm) is never shown — the next live card is — and the next
    evaluation stores the rule on it; serving it stays a read that writes nothing."""
    campaign, version, learner = card_setup
    retired = card_send(campaign, version, learner, occurrence_key="retired")
    Send.objects.filter(pk=retired.pk).update(priority=200)
    other = OfferFactory(name="Still on")
    live = card_send(campaign, version, learner, occurrence_key="live")
    Send.objects.filter(pk=live.pk).update(offer=other)
    assert api.get("/api/v1/learners/ann/offers/").json()["offer"]["send"] == retired.pk

    Offer.objects.filter(pk=campaign.offer_id).update(is_active=False)

    assert api.get("/api/v1/learners/ann/offers/").json()["offer"]["send"] == live.pk
    retired.refresh_from_db()
    assert (retired.status, retired.rule) == ("queued", "")  # the read wrote nothing
    assert SendEvent.objects.count() == 0

    campaigns_evaluate()

    retired.refresh_from_db()
    reason = f"{Rule.OFFER_INACTIVE.label}: switched off after the send was queued"
    assert (retired.status, retired.rule, retired.status_reason) == (
        "suppressed",
        Rule.OFFER_INACTIVE,
        reason,
    )
    assert list(SendEvent.objects.values_list("send_id", "kind", "detail")) == [
        (retired.pk, "failed", reason)
    ]
    live.refresh_from_db()
    assert (live.status, live.rule) == ("queued", "")
    Send.objects.filter(pk=live.pk).update(offer=campaign.offer)
    assert api.get("/api/v1/learners/ann/offers/").json() == {"offer": None}
