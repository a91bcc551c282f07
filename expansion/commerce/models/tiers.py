"""Good-better-best tier ladders (seed 001's tier designer)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .catalogue import Product


class TierLadder(models.Model):
    """A good-better-best menu (seed 001's tier designer). Exactly three tiers."""

    name = models.CharField(max_length=150, unique=True)
    anchor_position = models.PositiveSmallIntegerField(
        default=3, help_text="The tier led with (usually the highest), 1–3."
    )
    intended_winner = models.PositiveSmallIntegerField(
        default=2, help_text="The tier meant to win (usually the middle), 1–3."
    )
    expected_share = models.PositiveSmallIntegerField(
        default=60, help_text="Percent of buyers expected to choose the intended winner."
    )
    honest_comparison = models.TextField(
        blank=True,
        help_text="Would a customer feel respected seeing how this menu was built? Why.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(anchor_position__gte=1, anchor_position__lte=3),
                name="tierladder_anchor_1_3",
            ),
            models.CheckConstraint(
                condition=Q(intended_winner__gte=1, intended_winner__lte=3),
                name="tierladder_winner_1_3",
            ),
            models.CheckConstraint(
                condition=Q(expected_share__lte=100), name="tierladder_share_le_100"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    ladder = models.ForeignKey(TierLadder, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField(help_text="1 = good, 2 = better, 3 = best.")
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    audience = models.CharField(max_length=255, help_text="Who it is for.")
    features = models.JSONField(default=list, help_text="One feature per line.")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="tiers"
    )

    class Meta:
        ordering = ["ladder", "position"]
        constraints = [
            models.UniqueConstraint(fields=["ladder", "position"], name="tier_unique_position"),
            models.CheckConstraint(
                condition=Q(position__gte=1, position__lte=3), name="tier_position_1_3"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="tier_price_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.ladder}: {self.name}"
