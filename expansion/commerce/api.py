"""Sync API for products, orders and subscriptions (``/api/v1/``)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import django_filters
from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from expansion.core.api.filters import TextFilter
from expansion.core.api.views import (
    BulkUpsertView,
    StrictBooleanFilter,
    UtcDateTimeFilter,
    bulk_schema,
)
from learners.models import Learner

from .affinity import Recommendation, recommendations_for_learner, recommendations_for_product
from .metrics import DIGITS, MAX_PERIODS, PERIODS, period_starts, revenue_metrics
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
        slug_field="external_id", read_only=True, allow_null=True
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
    # A subscription is a learner's or an account's: the other is null.
    learner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, allow_null=True
    )
    account: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, allow_null=True
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
    kind = TextFilter()
    is_active = StrictBooleanFilter()

    class Meta:
        model = Product
        fields = ["kind", "is_active"]


class OrderFilter(django_filters.FilterSet):
    learner = TextFilter(field_name="learner__external_id")
    placed_after = UtcDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = UtcDateTimeFilter(field_name="placed_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["learner", "placed_after", "placed_before"]


class SubscriptionFilter(django_filters.FilterSet):
    learner = TextFilter(field_name="learner__external_id")
    account = TextFilter(field_name="account__external_id")
    status = TextFilter()
    renews_before = UtcDateTimeFilter(field_name="renews_at", lookup_expr="lt")

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


# Dates outside this range are refused, not computed: a year-1 end would underflow the
# default one-year window and a year-9999 end overflows the period after it.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)


class _RefusedEmpty(serializers.Field):
    """A query parameter given empty (``?start=``) is refused, not read as "not given" (which
    DRF does for an optional field)."""

    def get_value(self, dictionary: Any) -> Any:
        if self.field_name in dictionary and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


@extend_schema_field(
    {
        "type": "string",
        "format": "date",
        # The range the metrics accept (EARLIEST_DATE … LATEST_DATE), as the schema says it.
        "pattern": r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$",
    }
)
class _GivenDateField(_RefusedEmpty, serializers.DateField):
    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data == "":
            raise serializers.ValidationError("must be a date such as 2026-05-01")
        return super().run_validation(data)


class _GivenChoiceField(_RefusedEmpty, serializers.ChoiceField):
    pass


class MetricsQuery(serializers.Serializer):
    period = _GivenChoiceField(choices=PERIODS, default="month")
    start = _GivenDateField(required=False)
    end = _GivenDateField(required=False)

    def validate(self, attrs: dict) -> dict:
        for name in ("start", "end"):
            value = attrs.get(name)
            if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
                raise serializers.ValidationError(
                    {name: f"must be from {EARLIEST_DATE} to {LATEST_DATE}"}
                )
        # Not given, the end is today, or the start when that is later (a future period).
        end = attrs.get("end") or max(timezone.now().date(), attrs.get("start") or EARLIEST_DATE)
        start = attrs.get("start") or max(EARLIEST_DATE, end - timedelta(days=365))
        if start > end:
            raise serializers.ValidationError({"start": "is after end"})
        try:
            period_starts(attrs["period"], start, end)
        except ValueError as exc:
            raise serializers.ValidationError({"start": str(exc)}) from exc
        return {**attrs, "start": start, "end": end}


def _money_field(**kwargs: Any) -> serializers.DecimalField:
    """A metric in money: as many digits as the metrics compute (any volume the API takes)."""
    return serializers.DecimalField(max_digits=DIGITS, decimal_places=2, **kwargs)


def _ratio_field(**kwargs: Any) -> serializers.DecimalField:
    """A ratio to 4 places; an NRR or attach rate may be in the millions (10,000 × 0.01)."""
    return serializers.DecimalField(max_digits=DIGITS, decimal_places=4, **kwargs)


class PeriodOut(serializers.Serializer):
    period_start = serializers.DateField()
    orders = serializers.IntegerField()
    revenue = _money_field()
    aov = _money_field(allow_null=True)
    gross_margin = _ratio_field(allow_null=True)
    expansion_revenue = _money_field()
    expansion_by_type = serializers.DictField(child=_money_field())
    mrr_start = _money_field()
    mrr_new = _money_field()
    mrr_expansion = _money_field()
    mrr_contraction = _money_field()
    mrr_churn = _money_field()
    mrr_reactivation = _money_field()
    mrr_end = _money_field()
    mrr_expansion_by_type = serializers.DictField(child=_money_field())
    nrr = _ratio_field(allow_null=True)
    grr = _ratio_field(allow_null=True)
    attach_rates = serializers.DictField(child=_ratio_field(allow_null=True))


class MetricsOut(serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    currency = serializers.CharField()
    results = PeriodOut(many=True)


class Metrics(APIView):
    @extend_schema(
        summary="Revenue metrics by day, week or month",
        description="Orders, revenue, AOV, gross margin, one-time expansion revenue by type, "
        "MRR movements (ChartMogul's definitions), NRR, GRR and attach rates per add-on, for "
        f"each UTC period from start to end (default: the last 365 days; at most {MAX_PERIODS} "
        "periods). Given alone, `end` defaults to today (or to `start` when that is later) and "
        "`start` to a year before `end`; `start` after `end` is a 400. Money is in the "
        "deployment's one currency.",
        tags=["metrics"],
        parameters=[MetricsQuery],
        responses={200: MetricsOut},
    )
    def get(self, request: Request) -> Response:
        query = MetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        args = query.validated_data
        rows = revenue_metrics(period=args["period"], first=args["start"], last=args["end"])
        body = {
            "period": args["period"],
            "start": args["start"],
            "end": args["end"],
            "currency": settings.EXPANSION_CURRENCY,
            "results": [row.as_dict() for row in rows],
        }
        return Response(MetricsOut(body).data)


class RecommendationOut(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    price = serializers.DecimalField(max_digits=12, decimal_places=2, source="product.price")
    because_of = serializers.CharField(source="because_of.sku")
    lift = serializers.FloatField()
    confidence = serializers.FloatField()
    orders_together = serializers.IntegerField(source="orders_both")


class RecommendationsOut(serializers.Serializer):
    results = RecommendationOut(many=True)


LIMIT = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
    description="How many (1–20, default 5).",
)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "5")
    # ASCII digits only: str.isdigit() also passes '²', which int() then refuses (a 500).
    if not re.fullmatch(r"[0-9]{1,2}", raw) or not 1 <= int(raw) <= 20:
        raise serializers.ValidationError({"limit": "must be a whole number from 1 to 20"})
    return int(raw)


def _recommendations(items: list[Recommendation]) -> Response:
    return Response(RecommendationsOut({"results": items}).data)


class ProductRecommendations(APIView):
    @extend_schema(
        summary="Pairs well with: products bought with this one, by lift",
        description="Only pairs through the ethics gate: lift above the minimum (default 1), "
        "enough orders, enough support, both products active, not blocked by a marketer.",
        tags=["recommendations"],
        parameters=[LIMIT],
        responses={200: RecommendationsOut},
    )
    def get(self, request: Request, sku: str) -> Response:
        limit = _limit(request)
        product = generics.get_object_or_404(Product, sku=sku)
        return _recommendations(recommendations_for_product(product=product, limit=limit))


class LearnerRecommendations(APIView):
    @extend_schema(
        summary="Products that pair well with what a learner bought, not yet owned",
        tags=["recommendations"],
        parameters=[LIMIT],
        responses={200: RecommendationsOut},
    )
    def get(self, request: Request, external_id: str) -> Response:
        limit = _limit(request)
        learner = generics.get_object_or_404(Learner, external_id=external_id)
        return _recommendations(recommendations_for_learner(learner_id=learner.pk, limit=limit))
