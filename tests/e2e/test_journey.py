"""The whole journey in a real browser (Debian's Chromium, driven by Playwright), against a
live server, a real Celery worker on the broker and a real SMTP server:

a marketer logs in, builds a segment, a tier ladder, an offer, a template (previewed), an
experiment with a holdout and a campaign; the course's creator approves it; the marketer
activates it. The platform then pushes the events that complete the course through the API;
the send appears in the admin, the email arrives, its link is clicked, an order comes through
the API, and the funnel shows the conversion. The creator sees only their own course's sends.

Screenshots of every step go to ``var/e2e/`` (``E2E_ARTEFACTS``); the worker shares the
test database. ``.ci/run`` installs Chromium and sets ``E2E_REQUIRED=1`` so that a
missing browser fails the run instead of skipping the test.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, JourneyMoment, Send
from campaigns.roles import COURSE_CREATOR, MARKETER
from expansion.commerce.apikeys import api_key_issue
from experiments.assignment import bucket
from experiments.models import BUCKETS, Experiment
from learners.models import Event, Learner
from templates.models import MessageTemplate
from tests.campaigns.conftest import (
    Sink,
    card_campaign,
    card_send,
    data_analyst_path,
    free_port,
)
from tests.e2e.conftest import ARTEFACTS, PASSWORD, login
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import ProductFactory
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import (
    CourseFactory,
    ModuleFactory,
    UserFactory,
)
from tests.workers import worker_start


@pytest.fixture
def sink():
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


class Step:
    """Numbered screenshots, so the artefacts read as the story."""

    def __init__(self) -> None:
        self.n = 0

    def shot(self, page, name: str) -> None:
        self.n += 1
        page.screenshot(path=str(ARTEFACTS / f"{self.n:02d}-{name}.png"), full_page=True)


def saved(page) -> None:
    page.click("input[name=_save]")
    page.wait_for_load_state()
    errors = page.locator(".errornote, .errorlist").all_inner_texts()
    assert not errors, errors
    assert page.locator(".messagelist .success").count() == 1


def autocomplete(page, field: str, text: str) -> None:
    """Pick ``text`` in an admin autocomplete (select2) field, as a person would."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", text)
    page.click(f".select2-results__option:has-text('{text}')")


def run_action(page, base: str, name: str, action: str) -> None:
    page.goto(f"{base}/admin/campaigns/campaign/")
    page.check(f"tr:has-text('{name}') input.action-select")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.wait_for_load_state()


def api_post(base: str, key: str, path: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(condition, timeout: float, what: str):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_marketer_creator_and_platform_through_the_whole_journey(browser, live_server, sink):
    base = live_server.url
    step = Step()
    # The offer's landing page: one the live server has (the machine has no internet).
    cta = f"{base}/api/docs/"
    ExperimentSettingsFactory(global_holdout_percent=0)
    marketer = UserFactory(username="mia", is_staff=True)
    marketer.set_password(PASSWORD)
    marketer.save()
    marketer.groups.add(Group.objects.get(name=MARKETER))
    creator = UserFactory(username="carl", is_staff=True)
    creator.set_password(PASSWORD)
    creator.save()
    creator.groups.add(Group.objects.get(name=COURSE_CREATOR))
    course = CourseFactory(external_id="sql-1", title="SQL Basics", creator=creator)
    ModuleFactory(course=course, position=1, external_id="m1")
    ModuleFactory(course=course, position=2, external_id="m2", is_final=True)
    ProductFactory(sku="SQL-2", name="SQL Advanced", price=Decimal("99.00"))
    # Another creator's course, campaign and send: Carl must never see them.
    other = CampaignFactory(
        name="Someone else's", course=CourseFactory(creator=UserFactory(is_staff=True))
    )
    SendFactory(campaign=other, course=other.course)
    key = api_key_issue(name="platform", scopes=["read", "write"]).raw_key

    # ---- the marketer builds everything in the admin
    page = login(browser, base, "mia")
    step.shot(page, "marketer-home")

    page.goto(f"{base}/admin/learners/segment/add/")
    page.fill("#id_name", "Reachable learners")
    page.fill("#id_definition", json.dumps({"all": [{"field": "reachable"}]}))
    page.click("#segment-preview-button")  # the live count while editing
    page.wait_for_function("document.querySelector('#segment-preview-count').textContent")
    step.shot(page, "segment")
    saved(page)

    page.goto(f"{base}/admin/expansion/tierladder/add/")
    page.fill("#id_name", "Memberships")
    page.fill("#id_anchor_position", "3")
    page.fill("#id_intended_winner", "2")
    page.fill("#id_expected_share", "60")
    tiers = [
        ("1", "Basic", "19.00", "Courses"),
        ("2", "Pro", "39.00", "Courses\nCertificates"),
        ("3", "Team", "99.00", "Courses\nCertificates\nSeats"),
    ]
    for index, (position, name, price, features) in enumerate(tiers):
        page.fill(f"#id_tiers-{index}-position", position)
        page.fill(f"#id_tiers-{index}-name", name)
        page.fill(f"#id_tiers-{index}-price", price)
        page.fill(f"#id_tiers-{index}-audience", "Learners who want more")
        page.fill(f"#id_tiers-{index}-features", features)
    step.shot(page, "tier-ladder")
    saved(page)

    page.goto(f"{base}/admin/expansion/offer/add/")
    page.fill("#id_name", "SQL Advanced for graduates")
    page.select_option("#id_kind", "cross_sell")
    autocomplete(page, "product", "SQL Advanced")
    page.fill("#id_positioning", "The next course on the path.")
    page.fill("#id_cta_url", cta)
    step.shot(page, "offer")
    saved(page)

    page.goto(f"{base}/admin/message_templates/messagetemplate/add/")
    page.fill("#id_name", "Graduates: next course")
    page.select_option("#id_channel", "email")
    page.select_option("#id_category", "offers")
    page.fill(
        "#id_subject", '{{ learner.first_name }}, you finished {{ course.title | default: "it" }}'
    )
    page.fill(
        "#id_html_body",
        "<p>Well done, {{ learner.first_name }}.</p>"
        '<p><a href="{{ offer.cta_url }}">Start SQL Advanced</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
    )
    page.click("input[name=_continue]")
    page.wait_for_load_state()
    template = MessageTemplate.objects.get(name="Graduates: next course")
    page.goto(f"{base}/admin/message_templates/messagetemplate/{template.pk}/preview/")
    preview = page.frame_locator("iframe[title='HTML preview']")
    preview.locator("a", has_text="Start SQL Advanced").wait_for(timeout=5000)
    step.shot(page, "template-preview")

    page.goto(f"{base}/admin/experiments/experiment/add/")
    page.fill("#id_name", "Graduates: bonus or not")
    page.fill("#id_hypothesis", "A bonus session lifts conversion among graduates.")
    page.fill("#id_variable", "incentive")
    page.select_option("#id_primary_metric", "conversion")
    page.fill("#id_holdout_percent", "10")
    page.fill("#id_baseline_rate", "0.05")
    page.fill("#id_minimum_detectable_effect", "0.02")
    for _ in range(2):
        page.click("#arms-group .add-row a")
    page.fill("#id_arms-0-name", "Control")
    page.check("#id_arms-0-is_control")
    page.fill("#id_arms-0-weight", "1")
    page.fill("#id_arms-1-name", "Bonus")
    page.fill("#id_arms-1-weight", "1")
    step.shot(page, "experiment")
    saved(page)
    experiment = Experiment.objects.get(name="Graduates: bonus or not")
    page.goto(f"{base}/admin/experiments/experiment/{experiment.pk}/results/")
    page.click("button[name=action][value=start]")
    page.wait_for_load_state()
    experiment.refresh_from_db()
    assert experiment.status == "running"

    page.goto(f"{base}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Graduates: next course")
    page.select_option("#id_moment", str(JourneyMoment.objects.get(slug="course_completion").pk))
    page.select_option("#id_trigger", "final_module")
    autocomplete(page, "segment", "Reachable learners")
    autocomplete(page, "course", "SQL Basics")
    autocomplete(page, "offer", "SQL Advanced for graduates")
    autocomplete(page, "experiment", "Graduates: bonus or not")
    page.select_option("#id_email_template", str(template.pk))
    # New learners' LPS is low: this campaign waives the LPS floor (a guardrail field that
    # shows the policy's value it overrides).
    assert page.get_attribute("#id_guardrail__min_lps", "placeholder") == "policy: 40"
    page.fill("#id_guardrail__min_lps", "0")
    page.check("#id_requires_creator_approval")
    step.shot(page, "campaign")
    saved(page)
    campaign = Campaign.objects.get(name="Graduates: next course")
    change = f"{base}/admin/campaigns/campaign/{campaign.pk}/change/"
    page.goto(change)
    # The page shows the chosen trigger's parameters only (the final module takes none).
    assert page.locator(".field-trigger__assessment_high__min_score").is_hidden()
    page.select_option("#id_trigger", "assessment_high")
    assert page.locator(".field-trigger__assessment_high__min_score").is_visible()
    page.select_option("#id_trigger", "final_module")
    with page.expect_navigation():
        page.click("#campaign-steps input[value='Request review']")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.IN_REVIEW

    # ---- the course's creator: only their own course, and the approval on its page
    carl = login(browser, base, "carl")
    carl.goto(f"{base}/admin/")
    waiting = carl.locator("#needs-attention .attention-item").all_inner_texts()
    assert [text.split("\n")[0] for text in waiting] == [f"{campaign.name}: waiting for approval"]
    carl.goto(f"{base}/admin/campaigns/campaign/")
    listed = carl.locator("#result_list tbody tr").all_inner_texts()
    assert len(listed) == 1
    assert campaign.name in listed[0]
    carl.goto(change)
    assert carl.locator("#review-panel").is_visible()
    assert "SQL Advanced for graduates" in carl.locator("#review-offer").inner_text()
    preview = carl.locator("#message-preview").inner_text()
    if Learner.objects.exists():
        assert carl.locator("#message-preview iframe").count() == 1, preview
    else:  # the platform has synced nobody yet
        assert "No learner in its audience to render it for yet." in preview
    step.shot(carl, "creator-review")
    with carl.expect_navigation():
        carl.click("#campaign-steps input[value='Approve']")
    step.shot(carl, "creator-approved")
    campaign.refresh_from_db()
    assert campaign.approved_by == creator

    page.goto(change)
    page.click("#reach-load")
    page.wait_for_selector("#reach-figures")
    assert "Trigger occurrences, last 7 days" in page.locator("#reach-figures").inner_text()
    step.shot(page, "reach-estimate")
    # The estimate scrolled the page to its end; back at the top, as a person would.
    page.evaluate("window.scrollTo(0, 0)")
    with page.expect_navigation():
        page.click("#campaign-steps input[value='Activate']")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE, page.locator(".messagelist").all_inner_texts()
    step.shot(page, "campaign-active")

    # ---- the platform: a learner outside the experiment's holdout completes the course
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    worker = worker_start(
        queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        SITE_URL=base,
    )
    try:
        _platform_and_inbox(page, carl, base, key, step, campaign, experiment, sink, queue, cta)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def midday_zone() -> str:
    """An IANA zone (Etc/GMT±N) where it is between 12:00 and 13:00 now."""
    offset = (12 - timezone.now().hour + 12) % 24 - 12  # hours east of UTC, −12 … +11
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-5 is UTC+5


def _platform_and_inbox(page, carl, base, key, step, campaign, experiment, sink, queue, cta):
    settings.CELERY_TASK_DEFAULT_QUEUE = queue  # the live server enqueues for our worker
    holdout = experiment.holdout_percent * BUCKETS / 100
    ann = None
    for n in range(50):
        external_id = f"ann-{n}"
        api_post(
            base,
            key,
            "/api/v1/learners/bulk/",
            {
                "items": [
                    {
                        "external_id": external_id,
                        "email": f"{external_id}@example.org",
                        "name": "Ann Lee",
                        "marketing_opt_in": True,
                        # Midday where she lives, whatever the hour the suite runs at: the
                        # journey is not about quiet hours (tests/campaigns has those).
                        "time_zone": midday_zone(),
                    }
                ]
            },
        )
        learner = Learner.objects.get(external_id=external_id)
        if bucket(experiment.salt, learner.pk) >= holdout:
            ann = learner
            break
    assert ann is not None
    enrolled = (timezone.now() - timedelta(days=40)).isoformat()
    api_post(
        base,
        key,
        "/api/v1/enrollments/bulk/",
        {"items": [{"learner": ann.external_id, "course": "sql-1", "enrolled_at": enrolled}]},
    )
    now = timezone.now()
    events = [
        {
            "idempotency_key": f"{ann.external_id}-{module}",
            "learner": ann.external_id,
            "kind": "module_completed",
            "course": "sql-1",
            "module": module,
            "occurred_at": (now - timedelta(minutes=minutes)).isoformat(),
        }
        for module, minutes in (("m1", 30), ("m2", 1))
    ]
    assert api_post(base, key, "/api/v1/events/bulk/", {"items": events})["accepted"] == 2

    send = wait_for(
        lambda: Send.objects.filter(campaign=campaign, learner=ann, status="sent").first(),
        90,
        "the email to go out",
    )
    page.goto(f"{base}/admin/campaigns/send/")
    row = page.locator("#result_list tbody tr", has_text=campaign.name).all_inner_texts()
    assert len(row) == 1
    assert str(ann) in row[0]
    step.shot(page, "send-in-admin")

    message = wait_for(
        lambda: next((m for m in sink.messages if m["To"] == ann.email), None), 30, "the email"
    )
    assert message["Subject"] == "Ann, you finished SQL Basics"
    html = message.get_body(("html",)).get_content()
    link = re.search(r'href="([^"]*/m/c/[^"]+)"', html).group(1).replace("&amp;", "&")
    assert link.startswith(base)
    # The click is tracked, then the browser goes on to the offer's page.
    page.goto(link)
    assert page.url.startswith(cta)
    send.refresh_from_db()
    assert send.status == "clicked"

    order = {
        "external_id": f"order-{ann.external_id}",
        "learner": ann.external_id,
        "placed_at": timezone.now().isoformat(),
        "lines": [{"external_id": "1", "sku": "SQL-2", "quantity": 1, "unit_price": "99.00"}],
    }
    assert api_post(base, key, "/api/v1/orders/bulk/", {"items": [order]})["created"] == 1
    send = wait_for(
        lambda: Send.objects.filter(pk=send.pk, status="converted").first(), 30, "attribution"
    )
    assert send.revenue == Decimal("99.00")
    page.goto(f"{base}/admin/campaigns/campaign/funnel/")
    row = page.locator("table tr", has_text="Graduates: next course")
    cells = [cell.strip() for cell in row.locator("td").all_inner_texts()]
    # eligible, suppressed, queued, sending, failed, sent, delivered, opened, clicked,
    # converted, revenue, dismissed
    assert cells == [
        "Graduates: next course",
        *["1", "0", "0", "0", "0", "1", "0", "0", "1", "1"],
        *["$99.00", "0"],
    ]
    step.shot(page, "funnel-converted")

    carl.goto(f"{base}/admin/campaigns/send/")
    rows = carl.locator("#result_list tbody tr").all_inner_texts()
    assert len(rows) == 1  # not the other creator's send
    assert str(ann) in rows[0]
    step.shot(carl, "creator-sends")


@pytest.mark.django_db(transaction=True)
def test_the_widget_in_a_browser_shows_the_card_path_and_takes_a_dismissal(
    browser, live_server, settings
):
    """The embeddable widget on its demo page: the completion card with its countdown and
    reason, the dashboard's next step, the learning-path bar; "Not now" removes the card and
    records the dismissal with its reason (the decline guardrail then sees it)."""
    settings.SITE_URL = live_server.url
    campaign, version, learner = card_campaign()
    send = card_send(campaign, version, learner)
    data_analyst_path(learner, completed_at=timezone.now() - timedelta(days=3))
    UserFactory(username="sam", is_staff=True, is_superuser=True)
    step = Step()
    page = login(browser, live_server.url, "sam")
    page.goto(f"{live_server.url}/w/demo/?learner=ann")
    card = page.locator("#completion .xw-card")
    card.wait_for()
    assert card.locator(".xw-label").text_content() == "Well done — what's next"
    assert card.locator(".xw-title").text_content() == "Ready for SQL Advanced, Ann?"
    assert card.locator(".xw-body").text_content() == "You finished SQL Basics today."
    assert card.locator(".xw-why").text_content() == (
        "Why you're seeing this: You finished SQL Basics today."
    )
    assert re.fullmatch(r"4[78] h \d\d min left", card.locator(".xw-countdown").text_content())
    page.locator("#next-step .xw-card").wait_for()
    assert page.locator("#next-step .xw-label").text_content() == "Your next step"
    bar = page.locator("#path [role=progressbar]")
    bar.wait_for()
    assert bar.get_attribute("aria-valuenow") == "33"
    assert page.locator("#path .xw-label").text_content() == "Data analyst: 1 of 3 courses"
    assert page.locator("#path .xw-next-course").text_content() == "Next: SQL 2"
    step.shot(page, "widget-demo")
    wait_for(lambda: Send.objects.get(pk=send.pk).seen_at, 10, "the impression")

    card.locator(".xw-dismiss").click()
    assert page.locator("#completion .xw-card").count() == 0
    dismissed = wait_for(
        lambda: Send.objects.filter(pk=send.pk, status="dismissed").first(), 10, "the dismissal"
    )
    assert dismissed.dismiss_reason == "not_now"
    assert list(Event.objects.filter(learner=learner).values_list("kind", flat=True)) == [
        "offer_declined"
    ]
    step.shot(page, "widget-dismissed")
