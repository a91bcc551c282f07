"""The admin as a marketer and a course creator use it, in Chromium, on the demo's data
(``seed_demo``, as ``make run`` loads it): the home, the campaign builder and its reach
estimate, the segment builder, a learner's page, the funnel, the revenue dashboard and the
experiment's results; then the creator's home and her review.

Each page's screenshot is saved to ``E2E_ARTEFACTS`` (``tour-*.png``; ``.ci/run`` keeps
them under ``artifacts/e2e``).
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from campaigns.models import Campaign
from campaigns.roles import MARKETER
from experiments.models import Experiment
from learners.models import Learner, Segment
from tests.e2e.conftest import ARTEFACTS, PASSWORD, login
from tests.helpers import migration_rows_ensure

pytestmark = pytest.mark.django_db(transaction=True)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTEFACTS / f"tour-{name}.png"), full_page=True)


@pytest.fixture
def demo():
    migration_rows_ensure()  # an earlier transactional test's flush removed them
    call_command("seed_demo", learners=400, verbosity=0)
    marketer = User.objects.create_user("mia", password=PASSWORD, is_staff=True)
    marketer.groups.add(Group.objects.get(name=MARKETER))
    ana = User.objects.get(username="creator_ana")
    ana.set_password(PASSWORD)
    ana.save()


def test_a_marketer_then_a_creator_tour_the_admin(browser, live_server, demo):
    base = live_server.url
    page = login(browser, base, "mia")
    page.set_viewport_size({"width": 1400, "height": 900})
    # Nothing on the marketer's pages fails in the browser: no script error, no refused load.
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    # ---- home: what needs doing, the KPIs, the funnel, the menu by job
    page.goto(f"{base}/admin/")
    attention = page.locator("#needs-attention .attention-item").all_inner_texts()
    assert any(
        "SQL Basics graduates: the next course by email, at completion: waiting for approval"
        in text
        for text in attention
    ), attention
    assert page.locator("#kpis .kpi").count() == 7
    assert page.locator("#kpis .kpi .sparkline").count() >= 5
    assert page.locator("#home-funnel svg rect").count() == 10  # every status and stage
    groups = page.locator("#home-menu caption a.section").all_inner_texts()
    assert [g.strip().lower() for g in groups] == [
        "audience",
        "offers",
        "messages",
        "campaigns",
        "experiments",
        "insights",
        "settings",
    ]  # a marketer has no users or periodic tasks to see
    shot(page, "home")

    # ---- the campaign builder: the chosen trigger's parameters, the steps, the estimate
    graduates = Campaign.objects.get(name="Graduates: the next course")
    page.goto(f"{base}/admin/campaigns/campaign/{graduates.pk}/change/")
    headings = page.locator("fieldset.module h2").all_inner_texts()
    steps = [h for h in headings if "·" in h]
    assert [h.split("·")[1].strip().lower() for h in steps] == [
        "moment",
        "trigger",
        "audience",
        "offer",
        "message",
        "guardrails",
        "experiment",
        "review",
    ]
    assert page.locator("#id_trigger__cross_sell__min_days").is_visible()
    assert page.input_value("#id_trigger__cross_sell__min_days") == "14"
    assert page.locator("#id_trigger__assessment_high__min_score").is_hidden()
    assert page.get_attribute("#id_guardrail__min_lps", "placeholder") == "policy: 40"
    assert page.locator("#campaign-steps input[value='Pause']").count() == 1
    assert "Subject:" in page.locator("#message-preview").inner_text()
    shot(page, "campaign-builder")
    page.click("#reach-load")
    page.wait_for_selector("#reach-figures")
    figures = page.locator("#reach-figures").inner_text()
    assert "Trigger occurrences, last 7 days" in figures
    assert "would be queued" in figures
    page.locator("#reach-panel").scroll_into_view_if_needed()
    page.locator("#reach-panel").screenshot(path=str(ARTEFACTS / "tour-reach-estimate.png"))

    # ---- the segment builder: rows over the JSON, the live count follows
    segment = Segment.objects.get(name="Expansion-ready")
    page.goto(f"{base}/admin/learners/segment/{segment.pk}/change/")
    assert page.locator("#segment-builder .builder-row").count() == 3
    page.click("#segment-builder .builder-add >> text=+ condition")
    page.wait_for_selector("#segment-preview-count:has-text('learners match now')")
    definition = json.loads(page.input_value("#id_definition"))
    assert definition["all"][-1] == {"field": "lps", "op": "gte", "value": 70}
    page.select_option("#segment-builder .builder-row >> nth=3 >> select.builder-op", "between")
    definition = json.loads(page.input_value("#id_definition"))
    assert definition["all"][-1] == {"field": "lps", "op": "between", "value": [70, 100]}
    shot(page, "segment-builder")

    # ---- a learner's page: orders, sends, scores with readable titles
    learner = Learner.objects.filter(orders__isnull=False).order_by("id").first()
    page.goto(f"{base}/admin/learners/learner/{learner.pk}/change/")
    text = page.locator("#content-main").inner_text()
    assert "object (" not in text
    assert "orders" in text.lower()
    shot(page, "learner-page")

    # ---- a CSV import: a bad row writes nothing and is named; fixed, it goes in
    page.goto(f"{base}/admin/learners/learner/")
    page.click("a.import-link")
    bad = b"external_id,email,name\ncsv-1,csv1@example.com,One\ncsv-2,not-an-email,Two\n"
    page.set_input_files(
        "#id_file", files=[{"name": "l.csv", "mimeType": "text/csv", "buffer": bad}]
    )
    with page.expect_navigation():
        page.click("#csv-import-form input[type=submit]")
    assert "Nothing was written: 1 problem" in page.locator("#import-outcome").inner_text()
    cells = page.locator("#import-errors tbody td").all_inner_texts()
    assert cells[:2] == ["3", "email"]
    assert not Learner.objects.filter(external_id="csv-1").exists()
    shot(page, "csv-import")
    page.go_back()
    good = bad.replace(b"not-an-email", b"csv2@example.com")
    page.set_input_files(
        "#id_file", files=[{"name": "l.csv", "mimeType": "text/csv", "buffer": good}]
    )
    with page.expect_navigation():
        page.click("#csv-import-form input[type=submit]")
    assert "Imported: 2 created, 0 updated." in page.locator("#import-outcome").inner_text()
    assert Learner.objects.filter(external_id__in=["csv-1", "csv-2"]).count() == 2

    # ---- the funnel, the revenue dashboard, the experiment's results
    page.goto(f"{base}/admin/campaigns/campaign/funnel/")
    assert page.locator("svg[aria-label^='Funnel for']").count() >= 3
    labels = page.locator("svg[aria-label^='Funnel for'] >> nth=0 >> text").all_text_contents()
    assert {"eligible", "suppressed", "queued", "sending", "failed", "sent"} <= set(labels)
    shot(page, "funnel")
    page.goto(f"{base}/admin/expansion/order/revenue/")
    assert page.locator(".kpi-value").first.inner_text().startswith("$")
    assert page.locator("figure.chart").count() >= 7
    assert page.locator("figure.chart text.tick").count() > 20  # axes with values
    shot(page, "revenue-dashboard")
    experiment = Experiment.objects.get()
    page.goto(f"{base}/admin/experiments/experiment/{experiment.pk}/results/")
    lift = page.locator("figure.chart >> nth=1")
    assert lift.locator("polyline").count() >= 1
    assert lift.locator("polygon").count() >= 1  # the interval band
    assert "no lift" in page.locator("figure.chart >> nth=1 >> p.legend").inner_text()
    shot(page, "experiment-results")
    assert console_errors == []

    creator_review(browser, base)


def creator_review(browser, base: str) -> None:
    """creator_ana's home shows what waits for her and none of the company's figures; she
    reads the campaign's message, offer and audience and sends it back with a comment."""
    waiting = Campaign.objects.get(status="in_review")
    ana = login(browser, base, "creator_ana")
    ana.set_viewport_size({"width": 1400, "height": 900})
    ana.goto(f"{base}/admin/")
    assert ana.locator("h1").inner_text() == "Your courses' campaigns"
    assert ana.locator("#kpis").count() == 0
    titles = ana.locator("#needs-attention .attention-item strong").all_inner_texts()
    assert titles == [f"{waiting.name}: waiting for approval"]
    shot(ana, "creator-home")
    ana.click(f"#needs-attention a:has-text('{waiting.name}')")
    ana.wait_for_selector("#review-panel")
    # What she is asked to review is on the first screen, not below eight fieldsets.
    assert ana.locator("#review-panel").bounding_box()["y"] < 600
    assert "Next course in the path" in ana.locator("#review-offer").inner_text()
    assert ana.locator("#message-preview iframe").count() == 1
    assert ana.locator("#campaign-steps input[value='Approve']").count() == 1
    assert ana.locator("input[name^='trigger__']").count() == 0  # read-only for her
    ana.fill("#send-back-comment", "Please name the price: 30% off, not 'a discount'.")
    shot(ana, "creator-review")
    with ana.expect_navigation():
        ana.click("#review-panel button[form='send-back-form']")
    waiting.refresh_from_db()
    assert waiting.status == "draft"
    page = login(browser, base, "creator_ana")
    page.goto(f"{base}/admin/campaigns/campaign/{waiting.pk}/change/")
    assert "Please name the price" in page.locator("#sent-back").inner_text()
