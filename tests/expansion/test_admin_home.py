"""The admin's home: what needs doing, the KPIs against the period before, the funnel, the
menu grouped by job — and a creator's home, which shows her courses only."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.roles import COURSE_CREATOR, MARKETER
from expansion.admin_home import attention, home_context, kpis
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import OrderFactory, OrderLineFactory, ProductFactory
from tests.factories.experiments import ArmFactory, ExperimentFactory, assign_exactly
from tests.factories.learners import (
    CourseFactory,
    SegmentFactory,
    SegmentSnapshotFactory,
    UserFactory,
)
from tests.helpers import role_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer():
    return role_user(MARKETER)


@pytest.fixture
def creator():
    return role_user(COURSE_CREATOR)


def _login(client, user):
    client.force_login(user)
    return client


def _groups(body: str) -> list[str]:
    return re.findall(r'class="section" title="Models in the ([^"]+) application"', body)


def test_the_menu_is_grouped_by_job_with_the_plumbing_last(admin_client):
    body = admin_client.get("/admin/").content.decode()
    home = body[body.index('id="home-menu"') :]
    assert _groups(home) == [
        "Audience",
        "Offers",
        "Messages",
        "Campaigns",
        "Experiments",
        "Insights",
        "Settings",
        "Users and plumbing",
    ]
    insights = home[home.index("Models in the Insights") : home.index("Models in the Settings")]
    assert re.findall(
        r'scope="row" id="insights-[^"]+">\s*<a href="[^"]+">([^<]+)</a>', insights
    ) == ["Revenue dashboard", "Campaign funnel", "Scores and segments", "Orders", "Subscriptions"]
    plumbing = home[home.index("Models in the Users and plumbing") :]
    assert "Periodic tasks" in plumbing
    assert "Solar events" in plumbing
    assert "Periodic tasks" not in home[: home.index("Models in the Users and plumbing")]
    # Every page's sidebar has the same groups; an app's own page stays Django's.
    page = admin_client.get("/admin/learners/learner/").content.decode()
    assert _groups(page)[:2] == ["Audience", "Offers"]
    assert admin_client.get("/admin/learners/").status_code == 200


def test_a_marketer_sees_what_needs_doing(marketer, client):
    now = timezone.now()
    broken = CampaignFactory(name="Spring upsell")
    SendFactory.create_batch(2, campaign=broken, status="failed", created_at=now)
    SendFactory(campaign=broken, status="failed", created_at=now - timedelta(days=2))  # old
    SendFactory(campaign=broken, status="sent", created_at=now)
    review = CampaignFactory(
        name="Waiting one", status="in_review", course=CourseFactory(creator=UserFactory())
    )
    emptied = SegmentFactory(name="Trial users", size=0, refreshed_at=now)
    SegmentSnapshotFactory(segment=emptied, day=(now - timedelta(days=3)).date(), size=40)
    SegmentFactory(name="Never had anyone", size=0, refreshed_at=now)
    experiment = ExperimentFactory(
        name="Skewed", status="running", started_at=now - timedelta(days=30), holdout_percent=0
    )
    control = ArmFactory(experiment=experiment, is_control=True, name="Control")
    variant = ArmFactory(experiment=experiment, name="Variant")
    assign_exactly(experiment, control, 300, at=now - timedelta(days=20))
    assign_exactly(experiment, variant, 100, at=now - timedelta(days=20))

    items = attention(user=marketer, now=now)

    assert [(i.level, i.title) for i in items] == [
        ("error", "2 sends failed in the last 24 hours"),
        ("info", "Waiting one: waiting for approval"),
        ("error", "Skewed: sample ratio mismatch"),
        ("warning", "Segment Trial users is empty"),
    ]
    assert items[0].detail == "Spring upsell: 2. Each keeps its reason on the send."
    assert items[0].url == "/admin/campaigns/send/?status__exact=failed"
    assert items[1].url == f"/admin/campaigns/campaign/{review.pk}/change/"
    assert items[3].url == f"/admin/learners/segment/{emptied.pk}/change/"
    body = _login(client, marketer).get("/admin/").content.decode()
    assert body.count('class="attention-item') == 4
    assert '<a href="/admin/campaigns/send/?status__exact=failed"><strong>2 sends failed' in body


def test_an_experiment_at_its_sample_is_ready_to_decide(marketer):
    now = timezone.now()
    experiment = ExperimentFactory(
        name="Done",
        status="running",
        started_at=now - timedelta(days=90),
        holdout_percent=0,
        sample_size_per_arm=50,
        window_days=14,
    )
    for arm in (
        ArmFactory(experiment=experiment, is_control=True),
        ArmFactory(experiment=experiment),
    ):
        assign_exactly(experiment, arm, 50, at=now - timedelta(days=60))

    assert [(i.level, i.title) for i in attention(user=marketer, now=now)] == [
        ("info", "Done: ready to decide")
    ]


def test_nothing_to_do_is_said_and_staff_without_a_role_see_the_menu_only(marketer, client):
    assert attention(user=marketer, now=timezone.now()) == []
    body = _login(client, marketer).get("/admin/").content.decode()
    assert "Nothing needs you now" in body
    plain = UserFactory(is_staff=True)
    body = _login(client, plain).get("/admin/").content.decode()
    assert "Needs attention" not in body
    assert 'id="kpis"' not in body
    assert home_context(user=plain)["funnel"] is None


def test_the_kpis_compare_the_last_30_days_with_the_30_before(marketer, client):
    now = timezone.now()
    course = ProductFactory(price=Decimal("100.00"))
    for days_ago, price in ((3, "120.00"), (10, "80.00"), (40, "50.00")):
        OrderLineFactory(
            order=OrderFactory(placed_at=now - timedelta(days=days_ago)),
            product=course,
            unit_price=Decimal(price),
        )
    campaign = CampaignFactory()
    SendFactory(campaign=campaign, status="converted", converted_at=now - timedelta(days=1))
    SendFactory(campaign=campaign, status="converted", converted_at=now - timedelta(days=45))
    SendFactory(campaign=campaign, status="converted", converted_at=now - timedelta(days=44))

    tiles = {k.label.split(" (")[0]: k for k in kpis(now=now)}

    revenue = tiles["Revenue"]
    assert (revenue.value, revenue.previous, revenue.change, revenue.trend, revenue.good) == (
        "$200.00",
        "$50.00",
        "+300.0%",
        "up",
        True,
    )
    aov = tiles["AOV"]
    assert (aov.value, aov.previous, aov.change) == ("$100.00", "$50.00", "+100.0%")
    conversions = tiles["Conversions"]
    assert (conversions.value, conversions.previous, conversions.change, conversions.good) == (
        "1",
        "2",
        "−50.0%",
        False,
    )
    assert tiles["Expansion MRR"].change == "—"
    assert revenue.spark["points"].count(",") == 30  # one point a day
    body = _login(client, marketer).get("/admin/").content.decode()
    assert '<div class="kpi-value">$200.00</div>' in body
    assert '<div class="kpi-change good">▲ +300.0% <span class="help">(was $50.00)</span>' in body


def test_the_home_funnel_adds_up_every_campaign(marketer, client):
    now = timezone.now()
    for status in ("queued", "failed", "sent", "suppressed"):
        SendFactory(campaign=CampaignFactory(), status=status, created_at=now)
    SendFactory(campaign=CampaignFactory(), status="sent", created_at=now - timedelta(days=40))

    funnel = home_context(user=marketer, now=now)["funnel"]

    assert {k: funnel[k] for k in ("eligible", "suppressed", "queued", "failed", "sent")} == {
        "eligible": 4,
        "suppressed": 1,
        "queued": 1,
        "failed": 1,
        "sent": 1,
    }
    body = _login(client, marketer).get("/admin/").content.decode()
    assert "4 eligible = 1 suppressed + 1 queued + 0 sending + " in body


def test_a_creator_sees_her_own_campaigns_waiting_and_no_company_figures(creator, client):
    mine = CampaignFactory(
        name="Mine to approve", status="in_review", course=CourseFactory(creator=creator)
    )
    CampaignFactory(name="Someone else's", status="in_review", course=CourseFactory())
    SendFactory(campaign=mine, status="sent")
    SendFactory(campaign=CampaignFactory(course=CourseFactory()), status="failed")

    context = home_context(user=creator)

    assert [(i.level, i.title, i.detail) for i in context["attention"]] == [
        (
            "warning",
            "Mine to approve: waiting for approval",
            "Waiting for you to approve or send back.",
        )
    ]
    assert context["kpis"] == []
    assert (context["funnel"]["eligible"], context["funnel"]["sent"]) == (1, 1)
    body = _login(client, creator).get("/admin/").content.decode()
    assert "<h1>Your courses' campaigns</h1>" in body
    assert "Someone else" not in body
    assert 'id="kpis"' not in body
    assert "Revenue dashboard" not in body
    assert reverse("admin:campaigns_campaign_change", args=[mine.pk]) in body
