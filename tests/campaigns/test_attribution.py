"""Orders synced through the API are credited to the send that led to them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.attribution import orders_attribute
from campaigns.models import Send
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import OrderFactory, OrderLineFactory, ProductFactory
from tests.factories.learners import LearnerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


def send(learner, *, campaign, status="sent", **moments):
    return SendFactory(learner=learner, campaign=campaign, status=status, **moments)


def order_payload(external_id, learner, placed_at, lines):
    return {
        "external_id": external_id,
        "learner": learner.external_id,
        "placed_at": placed_at.isoformat(),
        "lines": lines,
    }


def test_an_order_is_credited_to_the_last_clicked_send_with_its_net_revenue(
    api, now, django_capture_on_commit_callbacks
):
    ProductFactory(sku="SQL-2", price=Decimal("99.00"))
    campaign = CampaignFactory()
    ann = LearnerFactory(external_id="ann")
    clicked = send(ann, campaign=campaign, status="clicked", clicked_at=now - timedelta(days=2))
    opened = send(ann, campaign=campaign, status="opened", opened_at=now - timedelta(hours=5))
    lines = [
        {"external_id": "1", "sku": "SQL-2", "unit_price": "99.00", "quantity": 2},
        {"external_id": "2", "sku": "SQL-2", "unit_price": "10.00", "refunded_amount": "10.00"},
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/orders/bulk/",
            {"items": [order_payload("o-1", ann, now - timedelta(hours=1), lines)]},
            format="json",
        )

    assert response.status_code == 200, response.content
    clicked.refresh_from_db()
    opened.refresh_from_db()
    assert (clicked.status, clicked.converted_order.external_id) == ("converted", "o-1")
    assert clicked.revenue == Decimal("198.00")  # 2 × 99 + 10 − 10 refunded
    assert clicked.converted_at == now - timedelta(hours=1)
    assert (opened.status, opened.converted_order) == ("opened", None)
    # The same order synced again credits nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        api.post(
            "/api/v1/orders/bulk/",
            {"items": [order_payload("o-1", ann, now - timedelta(hours=1), lines)]},
            format="json",
        )
    assert Send.objects.filter(status="converted").count() == 1


def test_without_a_click_the_last_opened_or_seen_send_wins(now):
    campaign = CampaignFactory()
    ann = LearnerFactory()
    older = send(ann, campaign=campaign, status="opened", opened_at=now - timedelta(days=3))
    seen = send(ann, campaign=campaign, channel="in_app", seen_at=now - timedelta(days=1))
    send(ann, campaign=campaign, status="queued", clicked_at=now - timedelta(hours=1))  # never
    order = OrderFactory(learner=ann, placed_at=now)
    OrderLineFactory(order=order, unit_price=Decimal("50.00"), quantity=1)

    assert orders_attribute(order_ids=[order.pk]) == 1

    seen.refresh_from_db()
    older.refresh_from_db()
    assert (seen.converted_order, seen.revenue) == (order, Decimal("50.00"))
    assert older.converted_order is None


@pytest.mark.parametrize(
    ("moment", "credited"),
    [
        ({"clicked_at": timedelta(days=7)}, True),  # the window's edge is inside
        ({"clicked_at": timedelta(days=7, seconds=1)}, False),
        ({"clicked_at": -timedelta(minutes=1)}, False),  # clicked after the order
    ],
)
def test_the_attribution_window(now, moment, credited):
    campaign = CampaignFactory()
    ann = LearnerFactory()
    s = send(ann, campaign=campaign, **{k: now - v for k, v in moment.items()})
    order = OrderFactory(learner=ann, placed_at=now)

    assert orders_attribute(order_ids=[order.pk]) == int(credited)
    s.refresh_from_db()
    assert (s.converted_order == order) is credited


def test_a_send_converts_once_and_never_for_test_or_suppressed_sends(now):
    campaign = CampaignFactory()
    ann, bob = LearnerFactory(), LearnerFactory()
    only = send(ann, campaign=campaign, clicked_at=now - timedelta(days=1))
    first = OrderFactory(learner=ann, placed_at=now - timedelta(hours=2))
    second = OrderFactory(learner=ann, placed_at=now - timedelta(hours=1))
    send(bob, campaign=campaign, status="suppressed", clicked_at=now - timedelta(days=1))
    send(bob, campaign=campaign, is_test=True, clicked_at=now - timedelta(days=1))
    bobs = OrderFactory(learner=bob, placed_at=now)

    assert orders_attribute(order_ids=[second.pk, first.pk, bobs.pk]) == 1

    only.refresh_from_db()
    assert only.converted_order == first  # the earlier order
    assert Send.objects.filter(converted_order__isnull=False).count() == 1
