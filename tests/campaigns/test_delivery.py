"""Email delivery through a real SMTP server on loopback (aiosmtpd, started per test)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlsplit

import pytest

from campaigns.delivery import DeliveryDeferred, email_send, send_create
from campaigns.links import unsubscribe_token
from campaigns.models import Send, SendEvent
from experiments.assignment import bucket
from experiments.models import ExperimentSettings
from learners.models import CategoryOptOut, ConsentChange, EmailSuppression, Learner
from templates.context import message_context
from templates.messages import template_snapshot
from tests.campaigns.conftest import free_port
from tests.factories.learners import EmailSuppressionFactory, LearnerFactory
from tests.factories.templates import MessageTemplateFactory

CTA = "https://learn.example.org/next?course=sql&step=2"
HTML = (
    "<p>Hi {{ learner.first_name }},</p>"
    f'<p><a class="cta" href="{CTA.replace("&", "&amp;")}">Take the next step</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


@pytest.fixture
def version(db):
    template = MessageTemplateFactory(
        name="Next step", subject="The next step, {{ learner.first_name }}", html_body=HTML
    )
    return template_snapshot(template=template)


def deliver(learner: Learner, version, **kwargs) -> Send:
    send = send_create(learner=learner, version=version, **kwargs)
    email_send(send=send, context=message_context(learner=learner))
    send.refresh_from_db()
    return send


def path_of(url: str) -> str:
    return urlsplit(url).path


def links(message) -> tuple[str, str]:
    html = message.get_body(("html",)).get_content()
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]
    tracked = [h for h in hrefs if "/m/c/" in h]
    unsubscribe = [h for h in hrefs if "/m/u/" in h]
    assert len(tracked) == 1, hrefs
    assert len(unsubscribe) == 1, hrefs
    return tracked[0], unsubscribe[0]


def test_an_email_leaves_multipart_with_one_click_headers_and_its_message_id_stored(smtp, version):
    learner = LearnerFactory(name="Ada Lovelace", email="ada@example.org")

    send = deliver(learner, version)

    assert send.status == "sent"
    assert send.attempts == 1
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert smtp.envelopes[0].rcpt_tos == ["ada@example.org"]
    assert message["Subject"] == "The next step, Ada"
    assert message["To"] == "ada@example.org"
    assert message["Message-ID"] == send.message_id
    assert send.provider_message_id == send.message_id
    assert send.message_id.endswith("@expansion.localhost>")
    unsubscribe = f"https://mail.example.org/m/u/{unsubscribe_token(send.pk)}/"
    assert message["List-Unsubscribe"].strip() == f"<{unsubscribe}>"  # may be folded
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content()
    assert "Hi Ada," in text
    assert CTA not in text  # the text part links through the tracker too
    tracked, unsubscribe_link = links(message)
    assert unsubscribe_link == unsubscribe
    assert tracked in text
    assert list(SendEvent.objects.filter(send=send).values_list("kind", flat=True)) == ["sent"]


def test_a_tracked_link_redirects_and_counts_the_click(smtp, version, client):
    send = deliver(LearnerFactory(), version)
    tracked, _ = links(smtp.messages[0])

    first = client.get(path_of(tracked))
    second = client.get(path_of(tracked))

    assert first.status_code == 302
    assert first["Location"] == CTA
    assert second["Location"] == CTA
    send.refresh_from_db()
    assert send.clicks == 2
    assert send.status == "clicked"
    assert send.clicked_at is not None
    assert SendEvent.objects.filter(send=send, kind="clicked").count() == 2


def test_one_click_unsubscribe_is_idempotent_and_stops_the_next_offer(smtp, version, client):
    learner = LearnerFactory()
    deliver(learner, version)
    _, unsubscribe = links(smtp.messages[0])

    first = client.post(path_of(unsubscribe), {"List-Unsubscribe": "One-Click"})
    second = client.post(path_of(unsubscribe), {"List-Unsubscribe": "One-Click"})

    assert first.status_code == 200
    assert second.status_code == 200
    assert list(
        CategoryOptOut.objects.filter(learner=learner).values_list("category", flat=True)
    ) == ["offers"]
    changes = ConsentChange.objects.filter(learner=learner)
    assert [(c.category, c.subscribed, c.source) for c in changes] == [
        ("offers", False, "one_click")
    ]
    learner.refresh_from_db()
    assert learner.unsubscribed_at is None  # only this category

    again = deliver(learner, version)

    assert again.status == "suppressed"
    assert again.status_reason == "opted out of offers"
    assert len(smtp.messages) == 1  # nothing more left


def test_the_preference_page_shows_without_changing_and_saves_categories(smtp, version, client):
    learner = LearnerFactory()
    deliver(learner, version)
    _, unsubscribe = links(smtp.messages[0])

    page = client.get(path_of(unsubscribe))

    assert page.status_code == 200
    assert b'value="offers" checked' in page.content
    assert ConsentChange.objects.count() == 0

    saved = client.post(path_of(unsubscribe), {"action": "save", "category": ["learning"]})

    assert saved.status_code == 200
    assert set(
        CategoryOptOut.objects.filter(learner=learner).values_list("category", flat=True)
    ) == {
        "offers",
        "news",
    }
    assert ConsentChange.objects.filter(learner=learner).count() == 2

    client.post(path_of(unsubscribe), {"action": "all"})
    learner.refresh_from_db()
    assert learner.unsubscribed_at is not None
    assert ConsentChange.objects.filter(learner=learner, category="").count() == 1


def test_forged_or_altered_tokens_change_nothing(smtp, version, client):
    victim = LearnerFactory()
    attacker = LearnerFactory()
    deliver(attacker, version)
    tracked, unsubscribe = links(smtp.messages[0])
    token = path_of(unsubscribe).split("/")[3]
    victim_send = send_create(learner=victim, version=version)
    forged_payload = token.replace(token.split(":")[0], str(victim_send.pk), 1)
    click_token = path_of(tracked).split("/")[3]

    responses = [
        client.post(f"/m/u/{forged_payload}/", {"List-Unsubscribe": "One-Click"}),
        client.post(f"/m/u/{token[:-2]}xx/", {"List-Unsubscribe": "One-Click"}),
        client.get(f"/m/u/{victim_send.pk}/"),
        client.get(f"/m/c/{click_token[:-3]}abc/"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert ConsentChange.objects.count() == 0
    assert CategoryOptOut.objects.count() == 0
    assert Send.objects.filter(clicks__gt=0).count() == 0


def test_a_template_that_does_not_render_fails_the_send_and_nothing_leaves(smtp, db):
    template = MessageTemplateFactory(
        html_body='<p>{{ offer.price | money }}</p><a href="{{ unsubscribe_url }}">u</a>'
    )
    version = template_snapshot(template=template)

    send = deliver(LearnerFactory(), version)  # no offer in this context

    assert send.status == "failed"
    assert send.status_reason.startswith("template: ")
    assert "offer" in send.status_reason
    assert smtp.messages == []


def test_smtp_down_defers_without_losing_the_send_then_it_leaves_once(smtp, version, settings):
    learner = LearnerFactory()
    send = send_create(learner=learner, version=version)
    settings.EMAIL_PORT = free_port()  # nothing listens here

    with pytest.raises(DeliveryDeferred):
        email_send(send=send, context=message_context(learner=learner))

    send.refresh_from_db()
    assert send.status == "queued"
    assert send.status_reason.startswith("deferred: ConnectionRefusedError")
    assert send.attempts == 1
    assert smtp.messages == []

    settings.EMAIL_PORT = smtp.controller.port
    outcome = email_send(send=send, context=message_context(learner=learner))
    repeat = email_send(send=send, context=message_context(learner=learner))

    assert outcome.sent is True
    assert repeat.sent is False  # already sent: not claimed again
    assert len(smtp.messages) == 1
    send.refresh_from_db()
    assert (send.status, send.attempts) == ("sent", 2)
    kinds = list(SendEvent.objects.filter(send=send).values_list("kind", flat=True))
    assert kinds == ["deferred", "sent"]


def test_a_refused_recipient_fails_for_good_and_a_busy_one_is_retried(smtp, version):
    refused = LearnerFactory(email="gone@example.org")
    busy = LearnerFactory(email="busy@example.org")
    smtp.refuse = {"gone@example.org": "550 5.1.1 No such user", "busy@example.org": "451 Later"}

    gone = deliver(refused, version)
    send = send_create(learner=busy, version=version)
    with pytest.raises(DeliveryDeferred):
        email_send(send=send, context=message_context(learner=busy))

    assert gone.status == "failed"
    assert "550" in gone.status_reason
    send.refresh_from_db()
    assert send.status == "queued"
    assert "451" in send.status_reason
    assert smtp.messages == []


def test_suppressed_addresses_and_missing_consent_send_nothing(smtp, version):
    bounced = LearnerFactory(email="Bounced@Example.org")
    EmailSuppressionFactory(email="bounced@example.org")
    no_consent = LearnerFactory(marketing_opt_in=False)

    first = deliver(bounced, version)
    second = deliver(no_consent, version)
    receipt = deliver(no_consent, version, category="transactional")
    test_to_bounced = deliver(no_consent, version, is_test=True, to_email="bounced@example.org")

    assert (first.status, first.status_reason) == (
        "suppressed",
        "address suppressed (bounce or complaint)",
    )
    assert (second.status, second.status_reason) == ("suppressed", "no marketing consent")
    assert receipt.status == "sent"  # transactional mail needs no marketing consent
    assert (test_to_bounced.status, test_to_bounced.status_reason) == (
        "suppressed",
        "address suppressed (bounce or complaint)",
    )
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["List-Unsubscribe"] is None


def test_a_provider_bounce_webhook_suppresses_the_address(smtp, version, client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:secret"}
    learner = LearnerFactory(email="ada@example.org")
    send = deliver(learner, version)
    auth = "Basic " + base64.b64encode(b"hook:secret").decode()
    payload = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "ID": 42,
        "MessageID": send.provider_message_id,
        "Email": "Ada@example.org",
        "BouncedAt": "2026-11-22T10:00:00Z",
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 The email account does not exist.",
    }

    refused = client.post(
        "/anymail/postmark/tracking/", json.dumps(payload), content_type="application/json"
    )

    assert refused.status_code == 400  # anymail: webhook validation failure
    assert EmailSuppression.objects.count() == 0

    accepted = client.post(
        "/anymail/postmark/tracking/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )

    assert accepted.status_code == 200
    suppression = EmailSuppression.objects.get()
    assert (suppression.email, suppression.reason) == ("ada@example.org", "bounce")
    send.refresh_from_db()
    assert send.status == "failed"
    assert send.status_reason == (
        "bounced: Postmark: bounced; The server was unable to deliver your message; "
        "smtp;550 5.1.1 The email account does not exist."
    )
    assert SendEvent.objects.filter(send=send, kind="bounced").count() == 1

    next_send = deliver(learner, version)

    assert next_send.status == "suppressed"
    assert len(smtp.messages) == 1


def test_an_admin_test_send_is_recorded_and_its_unsubscribe_link_changes_nothing(
    smtp, version, admin_client
):
    learner = LearnerFactory(name="Ada Lovelace")
    url = f"/admin/message_templates/messagetemplate/{version.template_id}/preview/"

    response = admin_client.post(f"{url}?learner={learner.external_id}", {"to": "me@example.org"})

    assert response.status_code == 302
    send = Send.objects.get()
    assert (send.is_test, send.status, send.to_email) == (True, "sent", "me@example.org")
    assert smtp.messages[0]["Subject"] == "[TEST] The next step, Ada"
    assert smtp.envelopes[0].rcpt_tos == ["me@example.org"]
    _, unsubscribe = links(smtp.messages[0])

    admin_client.post(path_of(unsubscribe), {"List-Unsubscribe": "One-Click"})
    page = admin_client.post(path_of(unsubscribe), {"action": "all"})

    assert b"This was a test email" in page.content
    assert ConsentChange.objects.count() == 0
    assert CategoryOptOut.objects.count() == 0
    learner.refresh_from_db()
    assert learner.unsubscribed_at is None


def test_the_global_holdout_gets_no_marketing_but_its_receipts(smtp, version):
    learners = LearnerFactory.create_batch(40)
    ExperimentSettings.objects.filter(id=1).update(
        global_holdout_percent=25, global_holdout_salt="g"
    )
    held = [learner for learner in learners if bucket("g", learner.pk) < 2500]
    assert held  # 25 % of 40: the salt is fixed, so this is stable

    offer = deliver(held[0], version)
    receipt = deliver(held[0], version, category="transactional")

    assert (offer.status, offer.status_reason) == (
        "suppressed",
        "in the global holdout (no marketing)",
    )
    assert receipt.status == "sent"
    assert len(smtp.messages) == 1
