"""The commerce side's editable numbers: discount ceiling, affinity gate, opportunity
thresholds (one row)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from expansion.core.singleton import SingletonModel


class CommerceSettings(SingletonModel):
    """The commerce side's editable numbers (one row). Defaults come from the seeds."""

    max_discount_percent = models.PositiveSmallIntegerField(
        default=30,
        help_text="No offer may discount more than this (seed 002's cross-sell: 30% off).",
    )
    discount_cooldown_days = models.PositiveSmallIntegerField(
        default=90,
        help_text="Habitual-discounting guard: a learner who bought at a discount within this "
        "many days gets the offer's value-add bonus instead of another discount.",
    )
    affinity_min_support = models.DecimalField(
        max_digits=6,
        decimal_places=5,
        default=Decimal("0.00100"),
        help_text="Share of orders that must hold a pair before it is stored.",
    )
    affinity_min_orders = models.PositiveIntegerField(
        default=5, help_text="Orders that must hold a pair before it may drive recommendations."
    )
    affinity_min_lift = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("1.000"),
        help_text="Ethics gate (seed 001): only pairs with lift above this recommend.",
    )
    affinity_window_days = models.PositiveIntegerField(
        default=365, help_text="Orders placed within this many days feed the affinity."
    )
    quota_opportunity = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("0.80"),
        help_text="Top opportunities: subscriptions at or above this share of their quota.",
    )
    seat_opportunity = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("0.80"),
        help_text="Top opportunities: subscriptions using this share of their seats.",
    )
    feature_request_events = models.PositiveSmallIntegerField(
        default=3,
        help_text="Top opportunities: premium-feature attempts within the window below.",
    )
    feature_request_days = models.PositiveSmallIntegerField(default=30)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "commerce settings"
        verbose_name_plural = "commerce settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="commercesettings_singleton"),
            models.CheckConstraint(
                condition=Q(max_discount_percent__lte=100), name="commercesettings_discount_le_100"
            ),
        ]

    def __str__(self) -> str:
        return "Commerce settings"
