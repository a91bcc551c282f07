"""Offers: what is proposed, with which incentive, at which journey moments."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from .catalogue import Product


class Moment(models.TextChoices):
    """Journey moments (seeds 001 and 004); campaigns attach triggers to them."""

    PRODUCT_PAGE = "product_page", "Product page"
    CHECKOUT = "checkout", "Cart / checkout"
    POST_PURCHASE = "post_purchase", "Post-purchase thank-you"
    ONBOARDING = "onboarding", "Onboarding"
    MILESTONE = "milestone", "Usage or value milestone"
    COURSE_COMPLETION = "course_completion", "Course completion"
    RENEWAL = "renewal", "Renewal (60–90 days out)"
    SUPPORT_RESOLUTION = "support_resolution", "Support resolution"


class OfferKind(models.TextChoices):
    UPSELL = "upsell", "Upsell"
    CROSS_SELL = "cross_sell", "Cross-sell"
    ORDER_BUMP = "order_bump", "Order bump"
    DOWNSELL = "downsell", "Downsell"
    ADD_ON = "add_on", "Add-on"
    SEAT_EXPANSION = "seat_expansion", "Seat expansion"
    USAGE_EXPANSION = "usage_expansion", "Usage expansion"
    ANNUAL = "annual", "Annual commitment"


class OutcomeGap(models.TextChoices):
    """Seed 000's outcome gaps: what the learner lacks that the offer supplies."""

    DEPTH = "depth", "Depth — wants advanced content"
    IMPLEMENTATION = "implementation", "Implementation — needs accountability or support"
    CREDENTIAL = "credential", "Credential — wants proof of competency"
    SPEED = "speed", "Speed — wants the outcome sooner"


class Incentive(models.TextChoices):
    NONE = "none", "None (full price)"
    DISCOUNT = "discount", "Percentage discount"
    BONUS = "bonus", "Value-add bonus"


class Offer(models.Model):
    name = models.CharField(max_length=150, unique=True)
    kind = models.CharField(max_length=20, choices=OfferKind.choices)
    outcome_gap = models.CharField(max_length=20, choices=OutcomeGap.choices, blank=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="offers")
    incentive = models.CharField(max_length=10, choices=Incentive.choices, default=Incentive.NONE)
    discount_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="For a percentage discount: 1–100, within the ceiling."
    )
    bonus = models.CharField(
        max_length=255,
        blank=True,
        help_text="Value-add bonus (e.g. 'a 1:1 review session'); also what a learner gets "
        "instead of a discount when the habitual-discounting guard applies.",
    )
    valid_hours = models.PositiveIntegerField(
        default=48, help_text="How long the offer stays open from the moment it is made."
    )
    fallback = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="fallback_for",
        help_text="The downsell offered when this one is declined.",
    )
    cta_url = models.URLField("call-to-action URL", max_length=500)
    positioning = models.CharField(
        max_length=255,
        help_text="One line saying why it helps, e.g. \"You've learned the framework. Now "
        "let's apply it.\"",
    )
    moments = models.JSONField(
        default=list, blank=True, help_text="Journey moments in which it may appear."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(incentive="discount")
                | Q(
                    discount_percent__isnull=False,
                    discount_percent__gte=1,
                    discount_percent__lte=100,
                ),
                name="offer_discount_has_percent",
            ),
            models.CheckConstraint(
                condition=Q(incentive="discount") | Q(discount_percent__isnull=True),
                name="offer_percent_only_with_discount",
            ),
            models.CheckConstraint(
                condition=~Q(incentive="bonus") | ~Q(bonus=""), name="offer_bonus_named"
            ),
            models.CheckConstraint(condition=Q(valid_hours__gte=1), name="offer_valid_hours"),
            models.CheckConstraint(condition=~Q(fallback=F("id")), name="offer_not_own_fallback"),
        ]

    def __str__(self) -> str:
        return self.name
