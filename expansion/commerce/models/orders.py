"""Orders and their lines (one-time revenue, refunds)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from learners.models import Learner

from .catalogue import Product, default_currency


class Order(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
    learner = models.ForeignKey(Learner, on_delete=models.PROTECT, related_name="orders")
    placed_at = models.DateTimeField()
    currency = models.CharField(max_length=3, default=default_currency)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at"]
        indexes = [
            # RFM and attribution read a learner's orders by time.
            models.Index(fields=["learner", "placed_at"], name="order_learner_time_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class OrderLine(models.Model):
    # Indexed by orderline_order_product_idx (and orderline_unique_ext), both led by it.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)
    external_id = models.CharField(max_length=255)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "external_id"], name="orderline_unique_ext"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderline_quantity_positive"
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="orderline_price_nonneg"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0)
                & Q(refunded_amount__lte=F("unit_price") * F("quantity")),
                name="orderline_refund_within_total",
            ),
        ]
        indexes = [
            # "Already owns the offered product" probes a candidate's orders for one product:
            # with the product in the index a probe that finds nothing reads no line (the
            # order-only index read every line of each order: 33,006 pages for 10,046
            # candidates at 1,000,000 learners, bench/README.md).
            models.Index(fields=["order", "product"], name="orderline_order_product_idx"),
            # Scoring's refund flag reads the few refunded lines; without this, every pass
            # scanned all order lines (~100 ms at 1,000,000).
            models.Index(
                fields=["order"], condition=Q(refunded_amount__gt=0), name="orderline_refunded_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}/{self.external_id}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity
