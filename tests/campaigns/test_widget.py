"""The embeddable widget's endpoints: a learner token, never an API key."""

import time
from pathlib import Path

import pytest
from django.core import signing

from campaigns.models import Send, SendEvent
from campaigns.widget import WIDGET_SALT, widget_token
from learners.models import Event
from tests.campaigns.conftest import card_send, data_analyst_path
from tests.factories.learners import LearnerFactory

pytestmark = pytest.mark.django_db


def test_a_token_from_the_api_reads_the_card_and_the_path(api, client, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)
    data_analyst_path(learner)

    issued = api.post("/api/v1/learners/ann/widget-token/", {}, format="json").json()
    assert issued["expires_in"] == 3600
    assert issued["script"] == "https://expansion.example.org/static/campaigns/widget.js"
    response = client.get(
        "/w/offers/?moment=course_completion", HTTP_X_WIDGET_TOKEN=issued["token"]
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    body = response.json()
    assert body["offer"]["send"] == send.pk
    assert body["offer"]["tracking"]["dismiss"] == (
        f"https://expansion.example.org/w/feedback/{send.pk}/dismiss/"
    )
    assert body["path"] == {
        "path": "Data analyst",
        "completed": 1,
        "total": 3,
        "courses": [
            {"title": "SQL 1", "completed": True},
            {"title": "SQL 2", "completed": False},
            {"title": "SQL 3", "completed": False},
        ],
        "next": "SQL 2",
    }
    assert response["Cache-Control"] == "no-store"
    # Reading the card changed nothing; the widget's impression records it sent and seen.
    send.refresh_from_db()
    assert (send.status, send.sent_at, send.seen_at) == ("queued", None, None)
    assert SendEvent.objects.filter(send=send).count() == 0
    seen = client.post(
        body["offer"]["tracking"]["impression"].removeprefix("https://expansion.example.org"),
        data={},
        content_type="application/json",
        HTTP_X_WIDGET_TOKEN=issued["token"],
    )
    assert seen.json() == {"send": send.pk, "status": "opened"}
    send.refresh_from_db()
    assert send.sent_at == send.seen_at is not None
    kinds = list(SendEvent.objects.filter(send=send).values_list("kind", flat=True))
    assert kinds == ["served", "seen"]


def test_reading_the_card_through_the_widget_changes_nothing(client, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner)
    token = widget_token(learner)

    bodies = [client.get("/w/offers/", HTTP_X_WIDGET_TOKEN=token).json() for _ in range(3)]

    assert bodies[0]["offer"]["send"] == send.pk
    assert bodies[1] == bodies[0] == bodies[2]
    send.refresh_from_db()
    assert (send.status, send.sent_at, send.seen_at) == ("queued", None, None)
    assert SendEvent.objects.count() == 0


def test_feedback_through_the_widget_and_its_boundaries(client, card_setup):
    campaign, version, learner = card_setup
    send = card_send(campaign, version, learner, status="sent")
    other = card_send(campaign, version, LearnerFactory(external_id="bob"), status="sent")
    token = widget_token(learner)

    def post(pk, kind, body, token=token):
        return client.post(
            f"/w/feedback/{pk}/{kind}/",
            data=body,
            content_type="application/json",
            HTTP_X_WIDGET_TOKEN=token,
        )

    assert post(other.pk, "dismiss", {"reason": "not_now"}).status_code == 404  # not theirs
    assert post(send.pk, "dismiss", {"reason": "because"}).status_code == 400
    assert post(send.pk, "impression", {}, token="forged").status_code == 401
    assert post(send.pk, "wave", {}).status_code == 400
    assert Event.objects.count() == 0
    assert Send.objects.get(pk=other.pk).dismissed_at is None
    assert SendEvent.objects.count() == 0
    assert post(send.pk, "dismiss", {"reason": "not_now"}).json() == {
        "send": send.pk,
        "status": "dismissed",
    }
    assert Event.objects.get().kind == "offer_declined"


def test_an_expired_token_is_refused(client, card_setup, monkeypatch):
    campaign, version, learner = card_setup
    real = time.time
    monkeypatch.setattr(signing.time, "time", lambda: real() - 3601)
    old = signing.TimestampSigner(salt=WIDGET_SALT).sign_object({"l": learner.pk})
    monkeypatch.setattr(signing.time, "time", real)
    assert client.get("/w/offers/", HTTP_X_WIDGET_TOKEN=old).status_code == 401
    assert client.get("/w/offers/", HTTP_X_WIDGET_TOKEN=widget_token(learner)).status_code == 200


def test_the_demo_page_is_for_staff_and_serves_the_script(client, admin_client, card_setup):
    campaign, version, learner = card_setup
    assert client.get("/w/demo/").status_code == 302
    page = admin_client.get("/w/demo/?learner=ann")
    assert page.status_code == 200
    body = page.content.decode()
    assert "/static/campaigns/widget.js" in body
    assert 'kind: "completion"' in body
    script = Path(__file__).resolve().parents[2] / "campaigns/static/campaigns/widget.js"
    assert "window.ExpansionWidget = { mount: mount }" in script.read_text()
