"""Bought together: product pairs' affinity and the marketers' reviews of pairs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .catalogue import Product


class ProductAffinity(models.Model):
    """Bought together: one row per ordered pair (A → B), refreshed by ``affinity_refresh``.

    support = orders with both / all orders; confidence = orders with both / orders with A;
    lift = confidence / (orders with B / all orders).
    """

    # Derived rows, rebuilt wholesale by the refresh from order lines, whose own foreign keys
    # (PROTECT) keep these products in place: no database constraint to re-check 890,000
    # times a refresh, and no index of their own (the unique pair and the lift index lead with
    # product; other is looked up only when a product is deleted). Deleting a product still
    # deletes its rows (Django's CASCADE).
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    other = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    orders_both = models.PositiveIntegerField()
    orders_product = models.PositiveIntegerField()
    orders_other = models.PositiveIntegerField()
    orders_total = models.PositiveIntegerField()
    support = models.FloatField()
    confidence = models.FloatField()
    lift = models.FloatField()
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "product affinities"
        ordering = ["-lift"]
        constraints = [
            models.UniqueConstraint(fields=["product", "other"], name="affinity_unique_pair"),
            models.CheckConstraint(condition=~Q(product=F("other")), name="affinity_two_products"),
        ]
        indexes = [
            # "Pairs well with" reads a product's partners by lift.
            models.Index(fields=["product", "-lift"], name="affinity_product_lift_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} → {self.other_id} (lift {self.lift:.2f})"


class PairReview(models.Model):
    """A marketer's verdict on a pair (seed 001's would-they-thank-me test)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    blocked = models.BooleanField(
        default=True, help_text="Blocked pairs never drive automatic recommendations."
    )
    note = models.CharField(max_length=255, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "other"], name="pairreview_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} → {self.other_id}: {'blocked' if self.blocked else 'approved'}"
