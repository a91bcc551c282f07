from datetime import UTC, datetime
from decimal import Decimal

import pytest

from expansion.commerce.models import Order, OrderLine, Product, Subscription
from learners.models import Account
from tests.factories.expansion import ProductFactory
from tests.factories.learners import CourseFactory, LearnerFactory

pytestmark = pytest.mark.django_db


def bulk(api, resource, items):
    return api.post(f"/api/v1/{resource}/bulk/", {"items": items}, format="json")


def test_products_upsert(api):
    CourseFactory(external_id="sql-2")
    items = [
        {
            "sku": "SQL-2",
            "name": "SQL Intermediate",
            "kind": "course",
            "price": "149.00",
            "unit_cost": 12.5,
            "course": "sql-2",
        },
        {"sku": "COACH", "name": "Coaching", "kind": "coaching", "price": 390},
    ]
    assert bulk(api, "products", items).json() == {"created": 2, "updated": 0, "errors": []}
    product = Product.objects.get(sku="SQL-2")
    assert (product.price, product.unit_cost, product.currency) == (
        Decimal("149.00"),
        Decimal("12.50"),
        "USD",
    )
    assert product.course.external_id == "sql-2"
    assert api.get("/api/v1/products/COACH/").json()["price"] == "390.00"


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"price": -1}, "price", "must be between 0 and 9999999999.99"),
        ({"price": "12.345"}, "price", "must have at most 2 decimal places"),
        ({"price": "abc"}, "price", "must be a decimal such as \"49.00\", got 'abc'"),
        # What Decimal() would read but the schema's pattern does not allow.
        ({"price": " 49"}, "price", "must be a decimal such as \"49.00\", got ' 49'"),
        ({"price": "4.9e1"}, "price", "must be a decimal such as \"49.00\", got '4.9e1'"),
        ({"price": "-0"}, "price", "must be a decimal such as \"49.00\", got '-0'"),
        ({"price": "+49"}, "price", "must be a decimal such as \"49.00\", got '+49'"),
        ({"price": "49."}, "price", "must be a decimal such as \"49.00\", got '49.'"),
        ({"price": "49.000"}, "price", "must have at most 2 decimal places"),
        ({"price": "10000000000"}, "price", "must be between 0 and 9999999999.99"),
        ({"price": 0.005}, "price", "must have at most 2 decimal places"),
        (
            {"kind": "spaceship"},
            "kind",
            "must be one of addon, certificate, coaching, cohort, course, plan, seat_pack, "
            "session, templates; got 'spaceship'",
        ),
        (
            {"currency": "EUR"},
            "currency",
            "must be USD: this deployment uses one currency (EXPANSION_CURRENCY), in capitals",
        ),
        ({"course": "ghost"}, "course", "unknown course 'ghost'"),
    ],
)
def test_product_errors(api, override, field, reason):
    item = {"sku": "X", "name": "X", "kind": "course", "price": "10.00"} | override
    response = bulk(api, "products", [item])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"], error["reason"]) == (0, field, reason)
    assert Product.objects.count() == 0


def test_money_as_a_string_or_a_number_is_kept_exactly(api):
    forms = ["49", "49.5", "0049.05", 49, 49.5, 0.07, "9999999999.99"]
    items = [
        {"sku": f"P{n}", "name": "X", "kind": "course", "price": price}
        for n, price in enumerate(forms)
    ]
    response = bulk(api, "products", items)
    assert response.status_code == 200, response.content
    assert (response.json()["created"], response.json()["errors"]) == (7, [])
    prices = dict(Product.objects.values_list("sku", "price"))
    assert [prices[f"P{n}"] for n in range(7)] == [
        Decimal(value)
        for value in ["49.00", "49.50", "49.05", "49.00", "49.50", "0.07", "9999999999.99"]
    ]


def order(external_id="o1", **overrides):
    return {
        "external_id": external_id,
        "learner": "a",
        "placed_at": "2026-04-01T12:00:00+01:00",
        "lines": [
            {"external_id": "1", "sku": "SQL-2", "quantity": 1, "unit_price": "149.00"},
            {"external_id": "2", "sku": "TPL", "quantity": 2, "unit_price": "20.00"},
        ],
    } | overrides


@pytest.fixture
def catalog():
    LearnerFactory(external_id="a")
    ProductFactory(sku="SQL-2", price=Decimal("149.00"))
    ProductFactory(sku="TPL", price=Decimal("20.00"))


def test_orders_upsert_replaces_lines(api, catalog):
    assert bulk(api, "orders", [order()]).json() == {"created": 1, "updated": 0, "errors": []}
    placed = Order.objects.get()
    assert placed.placed_at == datetime(2026, 4, 1, 11, 0, tzinfo=UTC)
    assert sorted(placed.lines.values_list("external_id", "quantity")) == [("1", 1), ("2", 2)]
    refunded = order(
        lines=[
            {
                "external_id": "1",
                "sku": "SQL-2",
                "unit_price": "149.00",
                "refunded_amount": "149.00",
            }
        ]
    )
    assert bulk(api, "orders", [refunded]).json() == {"created": 0, "updated": 1, "errors": []}
    assert list(OrderLine.objects.values_list("external_id", "refunded_amount")) == [
        ("1", Decimal("149.00"))
    ]
    detail = api.get("/api/v1/orders/o1/").json()
    assert detail["lines"] == [
        {
            "external_id": "1",
            "sku": "SQL-2",
            "quantity": 1,
            "unit_price": "149.00",
            "refunded_amount": "149.00",
        }
    ]


def test_order_errors_keep_good_orders(api, catalog):
    response = bulk(
        api,
        "orders",
        [
            order("good"),
            order("ghost", learner="nobody"),
            order("badsku", lines=[{"external_id": "1", "sku": "NOPE", "unit_price": "1.00"}]),
            order(
                "refund",
                lines=[
                    {
                        "external_id": "1",
                        "sku": "TPL",
                        "unit_price": "20.00",
                        "refunded_amount": "20.01",
                    }
                ],
            ),
            order("nolines", lines=[]),
        ],
    )
    assert response.status_code == 400
    assert [(e["index"], e["field"], e["reason"]) for e in response.json()["errors"]] == [
        (1, "learner", "unknown learner 'nobody'"),
        (2, "lines[0].sku", "unknown product 'NOPE'"),
        (3, "lines[0].refunded_amount", "exceeds quantity × unit_price"),
        (4, "lines", "must be a non-empty array of order lines"),
    ]
    assert list(Order.objects.values_list("external_id", flat=True)) == ["good"]
    assert OrderLine.objects.count() == 2


def test_a_started_at_past_the_stored_cancellation_is_named_not_a_500(api):
    LearnerFactory(external_id="a")
    ProductFactory(sku="PLAN", kind="plan")
    base = {"learner": "a", "plan": "PLAN", "mrr": "10.00", "status": "cancelled"}
    first = [
        base
        | {"external_id": name, "started_at": "2026-01-01T00:00:00Z"}
        | {"cancelled_at": "2026-02-01T00:00:00Z"}
        for name in ("s1", "s2")
    ]
    assert bulk(api, "subscriptions", first).json()["created"] == 2
    moved = [
        base | {"external_id": "s1", "started_at": "2026-03-01T00:00:00Z"},
        base | {"external_id": "s2", "started_at": "2026-01-15T00:00:00Z"},
    ]
    response = bulk(api, "subscriptions", moved)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "started_at",
            "reason": "is after the subscription's stored cancelled_at "
            "(2026-02-01T00:00:00+00:00); send cancelled_at too",
        }
    ]
    assert dict(Subscription.objects.values_list("external_id", "started_at")) == {
        "s1": datetime(2026, 1, 1, tzinfo=UTC),
        "s2": datetime(2026, 1, 15, tzinfo=UTC),
    }


def test_subscriptions_for_learner_and_account(api):
    LearnerFactory(external_id="a")
    ProductFactory(sku="PLAN-TEAM", kind="plan")
    items = [
        {
            "external_id": "s1",
            "learner": "a",
            "plan": "PLAN-TEAM",
            "mrr": "39.00",
            "status": "active",
            "started_at": "2026-01-01T00:00:00Z",
            "renews_at": "2026-12-01T00:00:00Z",
        },
        {
            "external_id": "s2",
            "account": "acme",
            "plan": "PLAN-TEAM",
            "mrr": "199.00",
            "status": "active",
            "started_at": "2026-01-01T00:00:00Z",
            "seats_used": 9,
            "seats_limit": 10,
            "quota_used": 8200,
            "quota_limit": 10000,
        },
        {
            "external_id": "s3",
            "learner": "a",
            "account": "acme",
            "plan": "PLAN-TEAM",
            "mrr": "1.00",
            "status": "active",
            "started_at": "2026-01-01T00:00:00Z",
        },
        {
            "external_id": "s4",
            "learner": "a",
            "plan": "PLAN-TEAM",
            "mrr": "1.00",
            "status": "paused",
            "started_at": "2026-01-01T00:00:00Z",
        },
    ]
    response = bulk(api, "subscriptions", items)
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [
        (2, "learner"),
        (3, "status"),
    ]
    team = Subscription.objects.get(external_id="s2")
    assert team.account == Account.objects.get(external_id="acme")
    assert (team.seats_used, team.seats_limit, team.quota_used) == (9, 10, 8200)
    assert (
        api.get("/api/v1/subscriptions/", {"account": "acme"}).json()["results"][0]["external_id"]
        == "s2"
    )
    assert Subscription.objects.count() == 2
