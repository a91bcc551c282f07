"""Revenue metrics hold every value the API accepts (issue 18, item 6).

The write limits: money is at most 9,999,999,999.99 (``expansion.core.api.batch.money``), a line's
quantity at most 1,000,000, a batch at most 1,000 items, an order's lines unbounded. Metrics
used to be a 500 at those limits: an NRR of 20,000 or an attach rate of 20,000 did not fit
their 8-digit field, and one line of 1,000,000 × 9,999,999,999.99 did not fit revenue's 16.
Every test here writes through the real bulk API and reads ``GET /api/v1/metrics/`` (and
the admin dashboard), asserting the exact figures.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from expansion.commerce.models import Order, OrderLine, Product, Subscription, SubscriptionChange
from tests.factories.learners import UserFactory

pytestmark = pytest.mark.django_db

MAX = "9999999999.99"
MAX_QUANTITY = 1_000_000


def _post(api, path: str, items: list[dict[str, Any]]) -> None:
    response = api.post(f"/api/v1/{path}/bulk/", {"items": items}, format="json")
    assert response.status_code == 200, response.content[:2000]
    assert response.json()["errors"] == []


def _metrics(api, start: str, end: str, period: str = "month") -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/metrics/?period={period}&start={start}&end={end}")
    assert response.status_code == 200, response.content[:2000]
    return response.json()["results"]


@pytest.fixture
def catalogue(api):
    _post(api, "learners", [{"external_id": "L1"}, {"external_id": "L2"}])
    _post(
        api,
        "products",
        [
            {"sku": "PLAN", "name": "Plan", "kind": "plan", "price": "1.00"},
            {"sku": "COURSE", "name": "Course", "kind": "course", "price": MAX},
            {"sku": "ADDON", "name": "Add-on", "kind": "addon", "price": "1.00"},
            {
                "sku": "COSTLY",
                "name": "Costly",
                "kind": "course",
                "price": "0.01",
                "unit_cost": MAX,
            },
            {
                "sku": "EVEN",
                "name": "At cost",
                "kind": "course",
                "price": "5.00",
                "unit_cost": "5.00",
            },
        ],
    )
    # The primary of an add-on is set in the admin (the sync API has no field for it).
    Product.objects.filter(sku="ADDON").update(attaches_to=Product.objects.get(sku="COURSE"))


def _subscription(external_id: str, mrr: str, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "learner": "L1",
        "plan": "PLAN",
        "mrr": mrr,
        "status": "active",
        "started_at": "2026-01-05T00:00:00Z",
    } | extra


@pytest.mark.parametrize(
    ("before", "after", "expansion", "nrr"),
    [
        ("1.00", "20000.00", "19999.00", "20000.0000"),
        ("0.01", MAX, "9999999999.98", "999999999999.0000"),
    ],
)
def test_an_nrr_as_large_as_the_api_allows_is_reported_exactly(
    api, catalogue, before, after, expansion, nrr
):
    _post(api, "subscriptions", [_subscription("S1", before)])
    _post(api, "subscriptions", [_subscription("S1", after, changed_at="2026-02-10T00:00:00Z")])
    assert SubscriptionChange.objects.count() == 2

    jan, feb = _metrics(api, "2026-01-01", "2026-02-28")
    assert (jan["mrr_new"], jan["mrr_end"], jan["nrr"]) == (before, before, None)
    assert {k: feb[k] for k in ("mrr_start", "mrr_expansion", "mrr_end", "nrr", "grr")} == {
        "mrr_start": before,
        "mrr_expansion": expansion,
        "mrr_end": after,
        "nrr": nrr,
        "grr": "1.0000",
    }
    assert feb["mrr_expansion_by_type"] == {"usage": expansion}


def test_a_thousand_subscriptions_at_the_largest_mrr_on_one_customer(api, catalogue):
    _post(api, "subscriptions", [_subscription("S0", "0.01")])
    # A paying customer's further subscriptions are expansion, typed by the product (a plan).
    more = [_subscription(f"S{n}", MAX, started_at="2026-02-10T00:00:00Z") for n in range(1, 1001)]
    _post(api, "subscriptions", more)
    assert Subscription.objects.count() == 1001

    jan, feb, mar = _metrics(api, "2026-01-01", "2026-03-31")
    assert (jan["mrr_end"], feb["mrr_start"]) == ("0.01", "0.01")
    assert (feb["mrr_expansion"], feb["mrr_expansion_by_type"]) == (
        "9999999999990.00",
        {"upsell": "9999999999990.00"},
    )
    assert (feb["mrr_end"], feb["nrr"], feb["grr"]) == (
        "9999999999990.01",
        "999999999999001.0000",
        "1.0000",
    )
    assert (mar["mrr_start"], mar["mrr_end"], mar["nrr"]) == (
        "9999999999990.01",
        "9999999999990.01",
        "1.0000",
    )


def _line(external_id: str, sku: str, quantity: int, unit_price: str, **extra: Any) -> dict:
    line = {"external_id": external_id, "sku": sku, "quantity": quantity}
    return line | {"unit_price": unit_price} | extra


def _order(external_id: str, placed_at: str, lines: list[dict], learner: str = "L1") -> dict:
    return {"external_id": external_id, "learner": learner, "placed_at": placed_at, "lines": lines}


def test_attach_rates_as_large_as_the_api_allows_are_reported_exactly(api, catalogue):
    jan = [_line("c", "COURSE", 1, "1.00"), _line("a", "ADDON", 20_000, "1.00")]
    feb = [_line("c", "COURSE", 1, "1.00")] + [
        _line(f"a{n}", "ADDON", MAX_QUANTITY, "1.00") for n in range(1000)
    ]
    _post(
        api,
        "orders",
        [_order("O1", "2026-01-10T00:00:00Z", jan), _order("O2", "2026-02-10T00:00:00Z", feb)],
    )
    assert OrderLine.objects.count() == 1003

    rates = [row["attach_rates"] for row in _metrics(api, "2026-01-01", "2026-02-28")]
    assert rates == [{"ADDON": "20000.0000"}, {"ADDON": "1000000000.0000"}]


def test_revenue_at_the_largest_line_and_a_thousand_of_them_is_exact(api, catalogue):
    biggest = _line("l", "COURSE", MAX_QUANTITY, MAX)
    thousand = [_line(f"l{n}", "COURSE", MAX_QUANTITY, MAX) for n in range(1000)]
    # March: a costed line that earns 0.01 beside 999 fully refunded lines that cost the most.
    margin = [_line("m", "COSTLY", 1, "0.01")] + [
        _line(f"r{n}", "COSTLY", MAX_QUANTITY, "0.01", refunded_amount="10000.00")
        for n in range(999)
    ]
    _post(
        api,
        "orders",
        [
            _order("O1", "2026-01-10T00:00:00Z", [biggest]),
            _order("O2", "2026-02-10T00:00:00Z", thousand),
            _order("O3", "2026-03-10T00:00:00Z", margin, learner="L2"),
        ],
    )
    assert (Order.objects.count(), OrderLine.objects.count()) == (3, 2001)

    jan, feb, mar = _metrics(api, "2026-01-01", "2026-03-31")
    assert {k: jan[k] for k in ("orders", "revenue", "aov", "gross_margin")} == {
        "orders": 1,
        "revenue": "9999999999990000.00",
        "aov": "9999999999990000.00",
        "gross_margin": None,
    }
    assert (jan["expansion_revenue"], jan["expansion_by_type"]) == ("0.00", {})
    # The second order of L1 is one-time expansion (a course: cross-sell).
    assert {k: feb[k] for k in ("orders", "revenue", "aov", "expansion_revenue")} == {
        "orders": 1,
        "revenue": "9999999999990000000.00",
        "aov": "9999999999990000000.00",
        "expansion_revenue": "9999999999990000000.00",
    }
    assert feb["expansion_by_type"] == {"cross_sell": "9999999999990000000.00"}
    # (0.01 − 9,999,999,999.99 − 999 × 1,000,000 × 9,999,999,999.99) / 0.01
    cost = Decimal(MAX) + 999 * MAX_QUANTITY * Decimal(MAX)
    assert cost == Decimal("9990000009990009999.99")
    assert {k: mar[k] for k in ("orders", "revenue", "aov", "gross_margin")} == {
        "orders": 1,
        "revenue": "0.01",
        "aov": "0.01",
        "gross_margin": "-999000000999000999998.0000",
    }


def test_the_revenue_dashboard_shows_the_extreme_figures(api, catalogue, client):
    month = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def stamp(minutes: int) -> str:
        return (month + timedelta(minutes=minutes)).isoformat()

    thousand = [_line(f"l{n}", "COURSE", MAX_QUANTITY, MAX) for n in range(1000)]
    _post(api, "orders", [_order("O1", stamp(0), [*thousand, _line("at-cost", "EVEN", 1, "5.00")])])
    _post(api, "subscriptions", [_subscription("S0", "0.01", started_at=stamp(1))])
    at_quota = {"started_at": stamp(2), "quota_used": 100, "quota_limit": 100}
    _post(api, "subscriptions", [_subscription(f"S{n}", MAX, **at_quota) for n in range(1, 1001)])
    events = [
        {"idempotency_key": f"e{n}", "learner": "L1", "kind": "premium_feature_attempted"}
        | {"occurred_at": stamp(3)}
        for n in range(3)
    ]
    response = api.post("/api/v1/events/bulk/", {"items": events}, format="json")
    assert response.status_code == 200, response.content

    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    response = client.get("/admin/expansion/order/revenue/")
    assert response.status_code == 200
    page = response.content.decode()
    # This month's row: revenue and AOV of the one order (L1 was no customer before it), and
    # a gross margin of 0 (the costed line sold at cost) shown as 0, not as "no figure".
    assert page.count('<td class="num">$9,999,999,999,990,000,005</td>') == 2
    assert '<td class="num">0.0%</td>' in page
    assert (
        '<div class="kpi-label">Expansion MRR</div><div class="kpi-value">$9,999,999,999,990</div>'
        in page
    )
    assert '<th class="num">$9,999,999,999,990</th>' in page  # the by-type table's MRR total
    assert (
        '<td class="num">$9,999,999,999,990</td>' in page
    )  # L1's MRR, behind premium-feature attempts
    # Subscriptions at their quota: the top 20 opportunities are L1's and 19 of them.
    assert (
        page.count('<td class="num">$10,000,000,000</td>') == 19
    )  # 9,999,999,999.99: ≥ 1,000 in whole units
    # The order list renders its total too (an exact numeric sum).
    assert client.get("/admin/expansion/order/").status_code == 200


def test_binary_fractions_do_not_blur_a_full_refund_or_a_churn(api, catalogue):
    """In floats 3 × 0.10 is 0.30000000000000004, so a refund of 0.30 would look partial, and a
    customer at 0.10 + 0.20 − 0.10 − 0.20 still paying: money stays decimal end to end."""
    lines = [
        _line("c", "COURSE", 1, "1.00"),
        _line("a", "ADDON", 3, "0.10", refunded_amount="0.30"),
    ]
    _post(api, "orders", [_order("O1", "2026-01-10T00:00:00Z", lines)])
    _post(api, "subscriptions", [_subscription("S1", "0.10"), _subscription("S2", "0.20")])
    ended = [
        _subscription("S1", "0.10", status="cancelled", cancelled_at="2026-02-03T00:00:00Z"),
        _subscription("S2", "0.20", status="cancelled", cancelled_at="2026-02-10T00:00:00Z"),
    ]
    for item in ended:
        _post(api, "subscriptions", [item])

    jan, feb = _metrics(api, "2026-01-01", "2026-02-28")
    assert (jan["revenue"], jan["attach_rates"], jan["mrr_end"]) == (
        "1.00",
        {"ADDON": "0.0000"},  # the refunded add-on units are not attached
        "0.30",
    )
    assert {k: feb[k] for k in ("mrr_contraction", "mrr_churn", "mrr_end", "nrr", "grr")} == {
        "mrr_contraction": "0.10",
        "mrr_churn": "0.20",
        "mrr_end": "0.00",
        "nrr": "0.0000",
        "grr": "0.0000",
    }
