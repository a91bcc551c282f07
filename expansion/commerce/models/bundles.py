"""Mixed bundles and their items (seed 001's bundle pricing calculator)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from .catalogue import Product


class Bundle(models.Model):
    """A mixed bundle (seed 001's bundle pricing calculator)."""

    name = models.CharField(max_length=150, unique=True)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    margin_floor = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("40.00"),
        help_text="Refuse a bundle price whose blended gross margin falls below this percent.",
    )
    question = models.CharField(
        max_length=255,
        blank=True,
        help_text="The single question it answers: what else do I need to make this work?",
    )
    product = models.ForeignKey(
        Product,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bundles",
        help_text="The product it is sold as, if any.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="bundle_price_positive"),
            models.CheckConstraint(
                condition=Q(margin_floor__gte=0, margin_floor__lte=100),
                name="bundle_margin_floor_percent",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BundleItem(models.Model):
    bundle = models.ForeignKey(Bundle, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["bundle", "id"]
        constraints = [
            models.UniqueConstraint(fields=["bundle", "product"], name="bundleitem_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="bundleitem_quantity"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_id}"
