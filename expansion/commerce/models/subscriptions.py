"""Subscriptions and their MRR ledger (``SubscriptionChange``), with the movement kinds
read from it."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from learners.models import Account, Learner

from .catalogue import Product


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


class MovementKind(models.TextChoices):
    """ChartMogul's MRR movements, decided per customer (learner or account)."""

    NEW = "new", "New business"
    EXPANSION = "expansion", "Expansion"
    CONTRACTION = "contraction", "Contraction"
    CHURN = "churn", "Churn"
    REACTIVATION = "reactivation", "Reactivation"


class ExpansionType(models.TextChoices):
    UPSELL = "upsell", "Upsell"
    CROSS_SELL = "cross_sell", "Cross-sell"
    ADD_ON = "add_on", "Add-on"
    SEAT_EXPANSION = "seat_expansion", "Seat expansion"
    USAGE = "usage", "Usage / price"


class SubscriptionChange(models.Model):
    """One change of a subscription's contributing MRR, written by the subscription sync.

    A subscription contributes its ``mrr`` while active or past due; trials and cancelled
    subscriptions contribute nothing. Only changes are stored (a replayed sync adds none), so
    the ledger summed up to any moment is the MRR at that moment, and the movement kind
    (new, expansion, contraction, churn, reactivation) is decided per customer from it in SQL
    (``expansion.commerce.metrics``).
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    learner = models.ForeignKey(
        Learner, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    effective_at = models.DateTimeField()
    mrr_before = models.DecimalField(max_digits=12, decimal_places=2)
    mrr_after = models.DecimalField(max_digits=12, decimal_places=2)
    expansion_type = models.CharField(
        max_length=20,
        choices=ExpansionType.choices,
        blank=True,
        help_text="For an increase: plan change = upsell, more seats = seat expansion, "
        "otherwise usage / price.",
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["effective_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(learner__isnull=False) & Q(account__isnull=True))
                | (Q(learner__isnull=True) & Q(account__isnull=False)),
                name="subscriptionchange_one_holder",
            ),
            models.CheckConstraint(
                condition=~Q(mrr_before=F("mrr_after")), name="subscriptionchange_is_a_change"
            ),
        ]
        indexes = [
            # MRR movements walk each customer's ledger in time order (window functions).
            models.Index(fields=["effective_at"], name="subchange_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.mrr_before} → {self.mrr_after}"
