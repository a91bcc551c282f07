"""The commerce side: products, orders, subscriptions; and the API keys clients sync with."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from learners.models import Account, Course, Learner


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
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def gross_margin(self) -> Decimal | None:
        if self.unit_cost is None or not self.price:
            return None
        return (self.price - self.unit_cost) / self.price


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
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
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

    def __str__(self) -> str:
        return f"{self.order_id}/{self.external_id}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"


class Subscription(models.Model):
    """A recurring plan held by a learner or by an account (exactly one of the two)."""

    external_id = models.CharField(max_length=255, unique=True)
    learner = models.ForeignKey(
        Learner, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    mrr = models.DecimalField("MRR", max_digits=12, decimal_places=2)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices)
    started_at = models.DateTimeField()
    renews_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    seats_used = models.PositiveIntegerField(null=True, blank=True)
    seats_limit = models.PositiveIntegerField(null=True, blank=True)
    quota_used = models.PositiveBigIntegerField(null=True, blank=True)
    quota_limit = models.PositiveBigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(learner__isnull=False) & Q(account__isnull=True))
                | (Q(learner__isnull=True) & Q(account__isnull=False)),
                name="subscription_one_holder",
            ),
            models.CheckConstraint(condition=Q(mrr__gte=0), name="subscription_mrr_nonnegative"),
            models.CheckConstraint(
                condition=Q(cancelled_at__isnull=True) | Q(cancelled_at__gte=F("started_at")),
                name="subscription_cancel_after_start",
            ),
        ]
        indexes = [
            # Renewal-window triggers scan upcoming renewals.
            models.Index(fields=["status", "renews_at"], name="subscription_renewal_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class ApiScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


class ApiKey(models.Model):
    """A client's key. Only a SHA-256 digest is stored; the key is shown once, at creation.

    Keys are 256-bit random tokens, so a fast digest is enough: there is nothing to brute-force
    that a slow password hash would protect, and lookups stay cheap on the ingestion hot path.
    """

    name = models.CharField(max_length=100, help_text="Who uses this key, e.g. 'LMS sync'.")
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="Any of: read, write.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return self.is_active and scope in self.scopes
