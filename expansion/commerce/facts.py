"""The commerce facts learners' scoring and segments read (see learners/commerce.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DecimalField, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from learners.models import Learner

from .models import Order, OrderLine, Subscription, SubscriptionStatus

LIVE = [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE]


class CommerceFacts:
    def order_totals_sql(self, *, scope: Any = None) -> tuple[str, list]:
        net = F("lines__unit_price") * F("lines__quantity") - F("lines__refunded_amount")
        orders = (
            Order.objects.all() if scope is None else Order.objects.filter(learner_id__in=scope)
        )
        qs = (
            orders.order_by()
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

    def renewing_sql(
        self, *, start: datetime, end: datetime, scope: Any = None
    ) -> tuple[str, list]:
        renewing = Subscription.objects.filter(
            status__in=LIVE, renews_at__gte=start, renews_at__lt=end
        )
        # Two plain selects in a UNION: an OR across the two joins defeats the indexes.
        own = renewing.filter(learner__isnull=False)
        team = Learner.objects.filter(
            account_id__in=renewing.filter(account__isnull=False).values("account_id")
        )
        if scope is not None:
            own, team = own.filter(learner_id__in=scope), team.filter(id__in=scope)
        own_ids = own.values(renewing_learner_id=F("learner_id"))
        team_ids = team.values(renewing_learner_id=F("id"))
        qs = own_ids.order_by().union(team_ids.order_by())
        sql, params = qs.query.sql_with_params()
        return sql, list(params)

    def refunded_sql(self, *, since: datetime, scope: Any = None) -> tuple[str, list]:
        lines = OrderLine.objects.filter(refunded_amount__gt=0, order__placed_at__gte=since)
        if scope is not None:
            lines = lines.filter(order__learner_id__in=scope)
        qs = lines.order_by().values(refunded_learner_id=F("order__learner_id")).distinct()
        sql, params = qs.query.sql_with_params()
        return sql, list(params)

    def edges_sql(
        self, *, since: datetime, until: datetime, renewal_days: int, refund_days: int
    ) -> tuple[str, list]:
        window = timedelta(days=renewal_days)
        # Live renewals leaving [as_of, as_of + window) at its start or entering at its end.
        renewals = Subscription.objects.filter(status__in=LIVE).filter(
            Q(renews_at__gte=since, renews_at__lt=until)
            | Q(renews_at__gte=since + window, renews_at__lt=until + window)
        )
        back = timedelta(days=refund_days)
        refunded = OrderLine.objects.filter(
            refunded_amount__gt=0,
            order__placed_at__gte=since - back,
            order__placed_at__lt=until - back,
        )
        qs = (
            renewals.filter(learner__isnull=False)
            .values_list("learner_id")
            .order_by()
            .union(
                Learner.objects.filter(
                    account_id__in=renewals.filter(account__isnull=False).values("account_id")
                )
                .values_list("id")
                .order_by(),
                refunded.values_list("order__learner_id").order_by(),
            )
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
