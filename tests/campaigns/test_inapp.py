"""The in-app channel through the API: the card, its tracking, and a dismissal that sticks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.evaluate import campaigns_evaluate
from campaigns.models import Rule, Send, SendEvent
from learners.models import DirtyLearner, Event
from tests.campaigns.conftest import card_send
from tests.factories.campaigns import SendFactory
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerScoreFactory,
    ModuleFactory,
)

pytestmark = pytest.mark.django_db


def test_the_card_is_rendered_with_reason_expiry_and_tracking(api, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)

    response = api.get("/api/v1/learners/ann/offers/?moment=course_completion")

    assert response.status_code == 200, response.content
    card = response.json()["offer"]
    assert card["send"] == send.pk
    assert card["title"] == "Ready for SQL Advanced, Ann?"
    assert card["body_html"] == "<p>completed the final module of SQL Basics; LPS 82</p>"
    assert card["reason"] == "completed the final module of SQL Basics; LPS 82"
    assert card["moment"] == "course_completion"
    assert card["cta_url"].startswith("https://expansion.example.org/m/c/")
    assert card["tracking"]["dismiss"] == (
        f"https://expansion.example.org/api/v1/sends/{send.pk}/dismiss/"
    )
    expires = send.created_at + timedelta(hours=48)
    assert card["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    send.refresh_from_db()
    assert send.status == "sent"  # served
    # Another moment has no card.
    assert api.get("/api/v1/learners/ann/offers/?moment=renewal").json() == {"offer": None}


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
    assert read_api.post(f"/api/v1/sends/{send.pk}/click/", {}, format="json").status_code == 403
    assert read_api.get("/api/v1/learners/ann/offers/").status_code == 200
    assert api.get("/api/v1/learners/nobody/offers/").status_code == 404
    send.refresh_from_db()
    assert send.clicks == 0


def test_a_card_that_cannot_render_fails_alone_and_the_next_one_is_served(api, card_setup):
    from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory

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

    response = api.get("/api/v1/learners/ann/offers/")

    assert response.status_code == 200
    assert response.json()["offer"]["send"] == fine.pk
    broken.refresh_from_db()
    assert broken.status == "failed"
    assert broken.status_reason.startswith("template: ")
    assert "usage" in broken.status_reason
    assert SendEvent.objects.filter(send=broken, kind="failed").count() == 1
