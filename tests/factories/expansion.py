from datetime import UTC, datetime
from decimal import Decimal

import factory

from expansion.apikeys import digest_key
from expansion.models import (
    ApiKey,
    Order,
    OrderLine,
    Product,
    ProductKind,
    Subscription,
    SubscriptionStatus,
)

from .learners import LearnerFactory

BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    kind = ProductKind.COURSE
    price = Decimal("99.00")
    currency = "USD"
    unit_cost = Decimal("20.00")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"order-{n}")
    learner = factory.SubFactory(LearnerFactory)
    placed_at = BASE_TIME
    currency = "USD"


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    external_id = factory.Sequence(lambda n: f"line-{n}")
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    unit_price = factory.LazyAttribute(lambda o: o.product.price)
    refunded_amount = Decimal("0.00")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    external_id = factory.Sequence(lambda n: f"sub-{n}")
    learner = factory.SubFactory(LearnerFactory)
    account = None
    plan = factory.SubFactory(ProductFactory, kind=ProductKind.PLAN, price=Decimal("29.00"))
    mrr = Decimal("29.00")
    status = SubscriptionStatus.ACTIVE
    started_at = BASE_TIME


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """``ApiKeyFactory(raw_key=...)``; the clear key is kept on ``obj.raw_key`` for tests."""

    class Meta:
        model = ApiKey
        exclude = ["raw_key"]
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"client {n}")
    prefix = factory.Sequence(lambda n: f"{n:08x}")
    raw_key = factory.LazyAttribute(lambda o: f"exp_{o.prefix}_secret-{o.prefix}")
    digest = factory.LazyAttribute(lambda o: digest_key(o.raw_key))
    scopes = factory.List(["read", "write"])

    @factory.post_generation
    def keep_raw_key(obj, create, extracted, **kwargs):  # noqa: N805
        obj.__dict__["raw_key"] = f"exp_{obj.prefix}_secret-{obj.prefix}"
