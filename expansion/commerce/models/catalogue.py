"""What is sold: products (courses, coaching, plans, add-ons ...) and their margins."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from learners.models import Course


def default_currency() -> str:
    return settings.EXPANSION_CURRENCY


class ProductKind(models.TextChoices):
    COURSE = "course", "Course"
    COACHING = "coaching", "Coaching"
    COHORT = "cohort", "Cohort program"
    CERTIFICATE = "certificate", "Certificate"
    TEMPLATES = "templates", "Templates / resource pack"
    SESSION = "session", "1:1 session"
    PLAN = "plan", "Plan"
    ADDON = "addon", "Add-on"
    SEAT_PACK = "seat_pack", "Seat pack"


class Product(models.Model):
    sku = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=ProductKind.choices)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default=default_currency)
    unit_cost = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Cost per unit sold, for gross margin. Empty = unknown.",
    )
    course = models.ForeignKey(
        Course, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    attaches_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="add_ons",
        help_text="For an add-on: the primary product it is sold with (attach rate = add-on "
        "units / units of this product).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_nonnegative"),
            models.CheckConstraint(
                condition=Q(unit_cost__isnull=True) | Q(unit_cost__gte=0),
                name="product_unit_cost_nonnegative",
            ),
            models.CheckConstraint(
                condition=~Q(attaches_to=F("id")), name="product_not_attached_to_itself"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def gross_margin(self) -> Decimal | None:
        if self.unit_cost is None or not self.price:
            return None
        return (self.price - self.unit_cost) / self.price
