"""A real SMTP server on loopback (aiosmtpd) for the tests that send email."""

from __future__ import annotations

import asyncio
import email
import socket
from decimal import Decimal
from email import policy

import pytest
from aiosmtpd.controller import Controller

from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import OfferFactory, ProductFactory
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import CourseFactory, EnrollmentFactory, LearnerFactory
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory


class Sink:
    """Collects what the SMTP server accepted; refuses recipients listed in ``refuse``, and
    every message's DATA with ``refuse_data`` when it is set."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []
        self.refuse: dict[str, str] = {}
        self.refuse_data = ""  # e.g. "554 5.7.1 Message rejected as spam"
        self.delay = delay  # seconds before accepting each message
        self.sessions: set[int] = set()  # one per SMTP connection that sent a message

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.refuse_data:
            return self.refuse_data
        if self.delay:
            await asyncio.sleep(self.delay)
        self.sessions.add(id(session))
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(settings, db):
    ExperimentSettingsFactory(global_holdout_percent=0)  # the holdout has its own test
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_TIMEOUT = 5
    settings.SITE_URL = "https://mail.example.org"
    sink.controller = controller
    yield sink
    controller.stop()


@pytest.fixture
def card_setup(settings):
    settings.SITE_URL = "https://expansion.example.org"
    return card_campaign()


def card_campaign():
    """An in-app completion card campaign for Ann: (campaign, template version, learner)."""
    ExperimentSettingsFactory(global_holdout_percent=0)
    template = MessageTemplateFactory(channel="in_app", name="Next step card")
    version = MessageTemplateVersionFactory(
        template=template,
        channel="in_app",
        content={
            "en": {
                "subject": "Ready for {{ offer.name }}, {{ learner.first_name }}?",
                "preheader": "",
                "html": "<p>{{ reason }}</p>",
                "text": "",
                "html_compiled": "<p>{{ reason }}</p>",
                "text_compiled": "{{ reason }}\n",
            }
        },
    )
    offer = OfferFactory(
        name="SQL Advanced",
        product=ProductFactory(name="SQL Advanced", price=Decimal("99")),
        cta_url="https://learn.example.org/sql-2",
        valid_hours=48,
    )
    campaign = CampaignFactory(
        name="Completion card",
        email_template=None,
        in_app_template=template,
        offer=offer,
    )
    learner = LearnerFactory(external_id="ann", name="Ann Lee")
    return campaign, version, learner


def data_analyst_path(learner, *, completed_at="2026-01-10T00:00:00Z"):
    """The learner on the "Data analyst" path of SQL 1–3, with SQL 1 completed."""
    for position, title in enumerate(["SQL 1", "SQL 2", "SQL 3"], start=1):
        course = CourseFactory(title=title, learning_path="Data analyst", path_position=position)
        EnrollmentFactory(
            learner=learner, course=course, completed_at=completed_at if position == 1 else None
        )


def card_send(campaign, version, learner, **kwargs):
    return SendFactory(
        learner=learner,
        campaign=campaign,
        channel="in_app",
        template_version=version,
        offer=campaign.offer,
        moment=campaign.moment,
        reason="completed the final module of SQL Basics; LPS 82",
        priority=100,
        **kwargs,
    )


@pytest.fixture
def slow_sink(settings):
    sink = Sink(delay=0.01)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    sink.controller = controller  # a test may stop it and start another on the same port
    yield sink, port
    try:
        sink.controller.stop()
    except AssertionError:  # already stopped by the test
        pass
