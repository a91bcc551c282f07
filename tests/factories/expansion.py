from datetime import UTC, datetime
from decimal import Decimal

import factory

from expansion.commerce.apikeys import digest_key
from expansion.commerce.models import (
    ApiKey,
    Bundle,
    BundleItem,
    CommerceSettings,
    Offer,
    OfferKind,
    Order,
    OrderLine,
    PairReview,
    Product,
    ProductAffinity,
    ProductKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    Tier,
    TierLadder,
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


class SubscriptionChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SubscriptionChange

    subscription = factory.SubFactory(SubscriptionFactory)
    learner = factory.LazyAttribute(lambda o: o.subscription.learner)
    account = factory.LazyAttribute(lambda o: o.subscription.account)
    effective_at = BASE_TIME
    mrr_before = Decimal("0.00")
    mrr_after = Decimal("29.00")
    expansion_type = ""


class CommerceSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CommerceSettings
        django_get_or_create = ["id"]

    id = 1


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    name = factory.Sequence(lambda n: f"Offer {n}")
    kind = OfferKind.CROSS_SELL
    product = factory.SubFactory(ProductFactory)
    cta_url = "https://learn.example.org/next"
    positioning = "The next step."
    moments = factory.List(["course_completion"])


class TierLadderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierLadder

    name = factory.Sequence(lambda n: f"Ladder {n}")


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    ladder = factory.SubFactory(TierLadderFactory)
    position = 1
    name = factory.Sequence(lambda n: f"Tier {n}")
    price = Decimal("19.00")
    audience = "Everyone"
    features = factory.List(["Courses"])


class BundleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bundle

    name = factory.Sequence(lambda n: f"Bundle {n}")
    price = Decimal("150.00")


class BundleItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BundleItem

    bundle = factory.SubFactory(BundleFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1


class ProductAffinityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductAffinity

    product = factory.SubFactory(ProductFactory)
    other = factory.SubFactory(ProductFactory)
    orders_both = 10
    orders_product = 20
    orders_other = 25
    orders_total = 100
    support = 0.1
    confidence = 0.5
    lift = 2.0
    computed_at = BASE_TIME


class PairReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PairReview

    product = factory.SubFactory(ProductFactory)
    other = factory.SubFactory(ProductFactory)
    blocked = True
