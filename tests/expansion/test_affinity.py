"""Affinity against hand-computed support, confidence and lift; the ethics gate; the API."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from expansion.commerce.affinity import (
    affinity_gated,
    affinity_refresh,
    recommendations_for_learner,
    recommendations_for_product,
)
from expansion.commerce.models import CommerceSettings, ProductAffinity
from tests.factories.expansion import (
    OrderFactory,
    OrderLineFactory,
    PairReviewFactory,
    ProductFactory,
)
from tests.factories.learners import CourseFactory, EnrollmentFactory, LearnerFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def basket(products, *skus, refunded=(), learner=None, days_ago=10):
    order = OrderFactory(
        learner=learner or LearnerFactory(), placed_at=NOW - timedelta(days=days_ago)
    )
    for sku in skus:
        product = products[sku]
        OrderLineFactory(
            order=order,
            product=product,
            unit_price=product.price,
            refunded_amount=product.price if sku in refunded else Decimal("0"),
        )
    return order


@pytest.fixture
def products(db):
    CommerceSettings.objects.update_or_create(
        id=1, defaults={"affinity_min_support": Decimal("0.15"), "affinity_min_orders": 3}
    )
    products = {sku: ProductFactory(sku=sku, name=f"Product {sku}") for sku in "ABCD"}
    for _ in range(4):
        basket(products, "A", "B")
    basket(products, "A")
    basket(products, "B")
    basket(products, "C")
    basket(products, "C")
    basket(products, "C", "D")
    basket(products, "A", "D", refunded=("D",))  # a pair returned is not a pair bought
    basket(products, "A", "B", "C", days_ago=400)  # outside the 365-day window
    return products


def test_refresh_stores_pairs_at_or_above_the_minimum_support(products):
    result = affinity_refresh(now=NOW)
    # 10 orders in the window; floor = ceil(0.15 × 10) = 2 orders: D (1 order) and the pair
    # C–D (1 order) are left out.
    assert (result.orders, result.pairs) == (10, 2)
    rows = {
        (row.product.sku, row.other.sku): (
            row.orders_both,
            row.orders_product,
            row.orders_other,
            row.orders_total,
            round(row.support, 4),
            round(row.confidence, 4),
            round(row.lift, 4),
        )
        for row in ProductAffinity.objects.select_related("product", "other")
    }
    assert rows == {
        ("A", "B"): (4, 6, 5, 10, 0.4, 0.6667, 1.3333),  # lift = 4 × 10 / (6 × 5)
        ("B", "A"): (4, 5, 6, 10, 0.4, 0.8, 1.3333),
    }


def test_refresh_is_idempotent_and_empty_without_orders(db):
    assert affinity_refresh(now=NOW).pairs == 0
    assert ProductAffinity.objects.count() == 0


def test_refresh_twice_gives_the_same_table(products):
    affinity_refresh(now=NOW)
    first = sorted(ProductAffinity.objects.values_list("product_id", "other_id", "lift"))
    assert affinity_refresh(now=NOW).pairs == 2
    assert sorted(ProductAffinity.objects.values_list("product_id", "other_id", "lift")) == first


def test_gate_needs_lift_above_one_enough_orders_and_no_block(products):
    affinity_refresh(now=NOW)
    assert [r.product.sku for r in recommendations_for_product(product=products["A"])] == ["B"]

    CommerceSettings.objects.filter(id=1).update(affinity_min_orders=5)
    assert recommendations_for_product(product=products["A"]) == []

    CommerceSettings.objects.filter(id=1).update(affinity_min_orders=3, affinity_min_lift=1.34)
    assert recommendations_for_product(product=products["A"]) == []

    CommerceSettings.objects.filter(id=1).update(affinity_min_lift=1)
    PairReviewFactory(product=products["A"], other=products["B"], blocked=True)
    assert recommendations_for_product(product=products["A"]) == []
    # The block is one way: B → A still recommends.
    assert [r.product.sku for r in recommendations_for_product(product=products["B"])] == ["A"]

    products["A"].is_active = False
    products["A"].save()
    assert affinity_gated().count() == 0


def test_learner_recommendations_skip_what_they_own(products):
    affinity_refresh(now=NOW)
    buyer = LearnerFactory()
    basket(products, "A", learner=buyer)
    (rec,) = recommendations_for_learner(learner_id=buyer.pk)
    assert (rec.product.sku, rec.because_of.sku, round(rec.lift, 4), rec.orders_both) == (
        "B",
        "A",
        1.3333,
        4,
    )
    basket(products, "B", learner=buyer)
    assert recommendations_for_learner(learner_id=buyer.pk) == []
    assert recommendations_for_learner(learner_id=LearnerFactory().pk) == []


@pytest.mark.parametrize("completed", [False, True])
def test_learner_recommendations_skip_a_course_they_take_or_completed(products, completed):
    """B is a course's product: a learner enrolled in the course (through a subscription, no
    order line for B) or who completed it is not offered it; another course still is."""
    course = CourseFactory()
    products["B"].course = course
    products["B"].save()
    affinity_refresh(now=NOW)
    buyer = LearnerFactory()
    basket(products, "A", learner=buyer)
    assert [r.product.sku for r in recommendations_for_learner(learner_id=buyer.pk)] == ["B"]
    EnrollmentFactory(learner=buyer, course=course, completed_at=NOW if completed else None)
    assert recommendations_for_learner(learner_id=buyer.pk) == []
    EnrollmentFactory(learner=buyer)  # another course: B stays out, nothing else changes
    assert recommendations_for_learner(learner_id=buyer.pk) == []


def test_recommendations_api(products, read_api):
    affinity_refresh(now=NOW)
    response = read_api.get("/api/v1/products/A/recommendations/")
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "sku": "B",
                "name": "Product B",
                "price": "99.00",
                "because_of": "A",
                "lift": pytest.approx(4 / 3),
                "confidence": pytest.approx(4 / 6),
                "orders_together": 4,
            }
        ]
    }
    buyer = LearnerFactory(external_id="buyer")
    basket(products, "A", learner=buyer)
    response = read_api.get("/api/v1/learners/buyer/recommendations/?limit=1")
    assert [r["sku"] for r in response.json()["results"]] == ["B"]

    bad = read_api.get("/api/v1/products/A/recommendations/?limit=0")
    assert bad.status_code == 400
    assert bad.json() == {
        "errors": [
            {"index": None, "field": "limit", "reason": "must be a whole number from 1 to 20"}
        ]
    }
    assert read_api.get("/api/v1/products/NOPE/recommendations/").status_code == 404
    assert read_api.get("/api/v1/learners/nobody/recommendations/").status_code == 404


def test_recommendations_api_needs_a_key(products, client):
    assert client.get("/api/v1/products/A/recommendations/").status_code == 401
