"""Sync API for products, orders and subscriptions (``/api/v1/``)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from .api_common import BulkUpsertView, bulk_schema
from .models import Order, OrderLine, Product, Subscription
from .sync import (
    ORDER_SPECS,
    PRODUCT_SPECS,
    SUBSCRIPTION_SPECS,
    orders_upsert,
    products_upsert,
    subscriptions_upsert,
)

TAGS = ["commerce"]


class ProductOut(serializers.ModelSerializer):
    course: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )

    class Meta:
        model = Product
        fields = [
            "sku",
            "name",
            "kind",
            "price",
            "currency",
            "unit_cost",
            "course",
            "is_active",
            "created_at",
            "updated_at",
        ]


class OrderLineOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku", read_only=True)

    class Meta:
        model = OrderLine
        fields = ["external_id", "sku", "quantity", "unit_price", "refunded_amount"]


class OrderOut(serializers.ModelSerializer):
    learner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )
    lines = OrderLineOut(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "external_id",
            "learner",
            "placed_at",
            "currency",
            "lines",
            "created_at",
            "updated_at",
        ]


class SubscriptionOut(serializers.ModelSerializer):
    learner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )
    account: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )
    plan: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="sku", read_only=True
    )

    class Meta:
        model = Subscription
        fields = [
            "external_id",
            "learner",
            "account",
            "plan",
            "mrr",
            "status",
            "started_at",
            "renews_at",
            "cancelled_at",
            "seats_used",
            "seats_limit",
            "quota_used",
            "quota_limit",
            "updated_at",
        ]


class ProductFilter(django_filters.FilterSet):
    kind = django_filters.CharFilter()
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Product
        fields = ["kind", "is_active"]


class OrderFilter(django_filters.FilterSet):
    learner = django_filters.CharFilter(field_name="learner__external_id")
    placed_after = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["learner", "placed_after", "placed_before"]


class SubscriptionFilter(django_filters.FilterSet):
    learner = django_filters.CharFilter(field_name="learner__external_id")
    account = django_filters.CharFilter(field_name="account__external_id")
    status = django_filters.CharFilter()
    renews_before = django_filters.IsoDateTimeFilter(field_name="renews_at", lookup_expr="lt")

    class Meta:
        model = Subscription
        fields = ["learner", "account", "status", "renews_before"]


@extend_schema(tags=TAGS)
class ProductList(generics.ListAPIView):
    queryset = Product.objects.select_related("course")
    serializer_class = ProductOut
    filterset_class = ProductFilter


@extend_schema(tags=TAGS)
class ProductDetail(generics.RetrieveAPIView):
    queryset = Product.objects.select_related("course")
    serializer_class = ProductOut
    lookup_field = "sku"


@bulk_schema(PRODUCT_SPECS, summary="Upsert products", tags=TAGS)
class ProductBulk(BulkUpsertView):
    upsert = staticmethod(products_upsert)


def _orders():
    return Order.objects.select_related("learner").prefetch_related("lines__product")


@extend_schema(tags=TAGS)
class OrderList(generics.ListAPIView):
    queryset = _orders()
    serializer_class = OrderOut
    filterset_class = OrderFilter


@extend_schema(tags=TAGS)
class OrderDetail(generics.RetrieveAPIView):
    queryset = _orders()
    serializer_class = OrderOut
    lookup_field = "external_id"


@bulk_schema(ORDER_SPECS, summary="Upsert orders (lines are replaced)", tags=TAGS)
class OrderBulk(BulkUpsertView):
    upsert = staticmethod(orders_upsert)


def _subscriptions():
    return Subscription.objects.select_related("learner", "account", "plan")


@extend_schema(tags=TAGS)
class SubscriptionList(generics.ListAPIView):
    queryset = _subscriptions()
    serializer_class = SubscriptionOut
    filterset_class = SubscriptionFilter


@extend_schema(tags=TAGS)
class SubscriptionDetail(generics.RetrieveAPIView):
    queryset = _subscriptions()
    serializer_class = SubscriptionOut
    lookup_field = "external_id"


@bulk_schema(SUBSCRIPTION_SPECS, summary="Upsert subscriptions", tags=TAGS)
class SubscriptionBulk(BulkUpsertView):
    upsert = staticmethod(subscriptions_upsert)
