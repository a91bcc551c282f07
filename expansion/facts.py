"""The commerce facts learners' scoring and segments read (see learners/commerce.py)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, DecimalField, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from learners.models import Learner

from .models import Order, OrderLine, Subscription, SubscriptionStatus

LIVE = [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE]


class CommerceFacts:
    def order_totals_sql(self) -> tuple[str, list]:
        net = F("lines__unit_price") * F("lines__quantity") - F("lines__refunded_amount")
        qs = (
            Order.objects.order_by()
            .values("learner_id")
            .annotate(
                last_order_at=Max("placed_at"),
                orders=Count("id", distinct=True),
                revenue=Coalesce(
                    Sum(net, output_field=DecimalField(max_digits=14, decimal_places=2)),
                    0,
                    output_field=DecimalField(max_digits=14, decimal_places=2),
                ),
            )
        )
        sql, params = qs.query.sql_with_params()
        return sql, list(params)

    def renewing_sql(self, *, start: datetime, end: datetime) -> tuple[str, list]:
        renewing = Subscription.objects.filter(
            status__in=LIVE, renews_at__gte=start, renews_at__lt=end
        )
        qs = (
            Learner.objects.filter(
                Q(subscriptions__in=renewing) | Q(account__subscriptions__in=renewing)
            )
            .order_by()
            .values(renewing_learner_id=F("id"))
            .distinct()
        )
        sql, params = qs.query.sql_with_params()
        return sql, list(params)

    def refunded_sql(self, *, since: datetime) -> tuple[str, list]:
        qs = (
            OrderLine.objects.filter(refunded_amount__gt=0, order__placed_at__gte=since)
            .order_by()
            .values(refunded_learner_id=F("order__learner_id"))
            .distinct()
        )
        sql, params = qs.query.sql_with_params()
        return sql, list(params)

    def owners(self, *, sku: str) -> QuerySet:
        bought = OrderLine.objects.filter(product__sku=sku).filter(
            refunded_amount__lt=F("unit_price") * F("quantity")
        )
        subscribed = Subscription.objects.filter(plan__sku=sku, status__in=LIVE)
        return Learner.objects.filter(
            Q(orders__lines__in=bought)
            | Q(subscriptions__in=subscribed)
            | Q(account__subscriptions__in=subscribed)
        ).values("id")
