"""Funnel figures, the holdout comparison, and the admin pages that show them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.funnel import dismiss_reasons, funnel, incremental_revenue, suppressed_by_rule
from campaigns.models import Campaign, Rule
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import OrderFactory, OrderLineFactory
from tests.factories.learners import LearnerFactory, LearnerScoreFactory, SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sends():
    now = timezone.now()
    segment = SegmentFactory(name="Ready")
    a = CampaignFactory(name="A", segment=segment)
    b = CampaignFactory(name="B", trigger="renewal", moment__slug="renewal")
    learners = [LearnerFactory() for _ in range(6)]
    for learner, band in zip(learners, ["high", "high", "mid", "mid", "low", "low"], strict=True):
        LearnerScoreFactory(learner=learner, band=band)
    SendFactory(campaign=a, learner=learners[0], status="suppressed", rule=Rule.LOW_LPS)
    SendFactory(campaign=a, learner=learners[1], status="suppressed", rule=Rule.HOLDOUT)
    SendFactory(campaign=a, learner=learners[2], status="sent", sent_at=now)
    SendFactory(
        campaign=a,
        learner=learners[3],
        status="converted",
        sent_at=now,
        delivered_at=now,
        opened_at=now,
        clicked_at=now,
        converted_order=OrderFactory(learner=learners[3]),
        revenue=Decimal("120.00"),
    )
    SendFactory(campaign=b, learner=learners[4], status="opened", sent_at=now, opened_at=now)
    SendFactory(campaign=b, learner=learners[5], status="suppressed", rule=Rule.LOW_LPS)
    SendFactory(
        campaign=b,
        learner=learners[5],
        channel="in_app",
        status="dismissed",
        sent_at=now,
        seen_at=now,
        dismissed_at=now,
        dismiss_reason="not_now",
    )
    SendFactory(learner=learners[5], is_test=True, sent_at=now)  # test sends never count
    return learners


def test_funnel_by_campaign(sends):
    assert funnel(by="campaign") == [
        {
            "key": "A",
            "eligible": 4,
            "suppressed": 2,
            "queued": 0,
            "sending": 0,
            "failed": 0,
            "sent": 2,
            "delivered": 1,
            "opened": 1,
            "clicked": 1,
            "converted": 1,
            "dismissed": 0,
            "revenue": Decimal("120.00"),
        },
        {
            "key": "B",
            "eligible": 3,
            "suppressed": 1,
            "queued": 0,
            "sending": 0,
            "failed": 0,
            "sent": 2,  # the email, and the in-app card seen
            "delivered": 0,
            "opened": 2,
            "clicked": 0,
            "converted": 0,
            "dismissed": 1,
            "revenue": Decimal("0"),
        },
    ]


def test_funnel_by_other_dimensions(sends):
    by_band = {row["key"]: (row["eligible"], row["converted"]) for row in funnel(by="band")}
    assert by_band == {"high": (2, 0), "mid": (2, 1), "low": (3, 0)}
    by_segment = {row["key"]: row["eligible"] for row in funnel(by="segment")}
    assert by_segment == {"Ready": 4, "—": 3}
    assert {row["key"]: row["eligible"] for row in funnel(by="trigger")} == {
        "final_module": 4,
        "renewal": 3,
    }

    assert dismiss_reasons() == [("Not now", 1)]
    assert suppressed_by_rule() == [
        (Rule.LOW_LPS.label, 2),
        (Rule.HOLDOUT.label, 1),
    ]


def test_incremental_revenue_against_the_holdout():
    now = timezone.now()
    campaign = CampaignFactory(name="Next course")
    treated = [LearnerFactory() for _ in range(4)]
    held = [LearnerFactory() for _ in range(2)]
    for learner in treated:
        SendFactory(campaign=campaign, learner=learner, status="sent", created_at=now)
    for learner in held:
        SendFactory(
            campaign=campaign,
            learner=learner,
            status="suppressed",
            rule=Rule.HOLDOUT,
            created_at=now,
        )
    # Treated: 100 + 60 within 7 days; one order after the window does not count.
    for learner, amount, days in (
        (treated[0], "100", 1),
        (treated[1], "60", 6),
        (treated[2], "999", 8),
    ):
        order = OrderFactory(learner=learner, placed_at=now + timedelta(days=days))
        OrderLineFactory(order=order, unit_price=Decimal(amount), quantity=1)
    # Holdout: 20 within the window.
    order = OrderFactory(learner=held[0], placed_at=now + timedelta(days=2))
    OrderLineFactory(order=order, unit_price=Decimal("20"), quantity=1)

    (row,) = incremental_revenue(window_days=7)

    assert (row.campaign, row.treated, row.holdout) == ("Next course", 4, 2)
    assert row.revenue_per_treated == Decimal("40.00")  # 160 / 4
    assert row.revenue_per_holdout == Decimal("10.00")  # 20 / 2
    assert row.incremental_revenue == Decimal("120.00")  # (40 − 10) × 4


def test_admin_funnel_and_preview_pages(admin_client, sends):
    page = admin_client.get("/admin/campaigns/campaign/funnel/?by=band")
    assert page.status_code == 200
    body = page.content.decode()
    assert "LPS band (now)" in body
    assert "LPS below the minimum" in body  # the suppressed-by-rule table
    assert body.count('aria-label="Funnel for') == 3  # one funnel per band
    campaign = Campaign.objects.get(name="A")
    preview = admin_client.get(f"/admin/campaigns/campaign/{campaign.pk}/preview/")
    assert preview.status_code == 200
    assert "would be queued" in preview.content.decode()
