from decimal import Decimal

import pytest

from tests.factories.expansion import (
    OrderLineFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.factories.learners import AccountFactory, LearnerFactory
from tests.helpers import refused

pytestmark = pytest.mark.django_db


def test_product_constraints():
    ProductFactory(sku="A")
    assert refused(ProductFactory, sku="A")
    assert refused(ProductFactory, price=Decimal("-1"))
    assert refused(ProductFactory, unit_cost=Decimal("-0.01"))


def test_product_gross_margin():
    assert ProductFactory(price=Decimal("100"), unit_cost=Decimal("25")).gross_margin == Decimal(
        "0.75"
    )
    assert ProductFactory(unit_cost=None).gross_margin is None


def test_order_line_refund_cannot_exceed_its_amount():
    line = OrderLineFactory(quantity=2, unit_price=Decimal("10.00"), refunded_amount=Decimal("20"))
    assert line.amount == Decimal("20.00")
    assert refused(
        OrderLineFactory, quantity=2, unit_price=Decimal("10.00"), refunded_amount=Decimal("20.01")
    )
    assert refused(OrderLineFactory, quantity=0)


def test_subscription_has_exactly_one_holder():
    assert refused(SubscriptionFactory, learner=None, account=None)
    assert refused(SubscriptionFactory, learner=LearnerFactory(), account=AccountFactory())
    assert not refused(SubscriptionFactory, learner=None, account=AccountFactory())
