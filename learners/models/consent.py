"""Consent: message categories, per-category opt-outs, the consent log, suppressed addresses.

The learner is referred to by name ("learners.Learner"): these models are what
``querysets.reachable_q`` reads, and ``core`` imports the querysets.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class MessageCategory(models.TextChoices):
    """What a message is about. Learners opt out per marketing category; transactional
    messages (receipts, account) are not marketing and need no consent."""

    OFFERS = "offers", "Offers and upgrades"
    LEARNING = "learning", "Learning tips and progress"
    NEWS = "news", "Product news"
    TRANSACTIONAL = "transactional", "Transactional (receipts, account)"


MARKETING_CATEGORIES = (MessageCategory.OFFERS, MessageCategory.LEARNING, MessageCategory.NEWS)


class CategoryOptOut(models.Model):
    """A learner's standing "no" to one marketing category (the preference page writes it)."""

    learner = models.ForeignKey(
        "learners.Learner", on_delete=models.CASCADE, related_name="opt_outs"
    )
    category = models.CharField(max_length=20, choices=MessageCategory.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["learner", "category"]
        constraints = [
            models.UniqueConstraint(fields=["learner", "category"], name="optout_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.learner_id} opted out of {self.category}"


class ConsentSource(models.TextChoices):
    ONE_CLICK = "one_click", "One-click unsubscribe (List-Unsubscribe-Post)"
    PREFERENCES = "preferences", "Preference page"
    ADMIN = "admin", "Admin"
    API = "api", "API"


class ConsentChange(models.Model):
    """Every change of a learner's consent, kept: who, what, how and from which message."""

    learner = models.ForeignKey(
        "learners.Learner", on_delete=models.CASCADE, related_name="consent_changes"
    )
    category = models.CharField(
        max_length=20, blank=True, help_text="Empty: all marketing (unsubscribe from everything)."
    )
    subscribed = models.BooleanField()
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    send_id = models.BigIntegerField(
        null=True, blank=True, help_text="The message whose link made the change, if any."
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["learner", "changed_at"], name="consent_learner_idx")]

    def __str__(self) -> str:
        verb = "subscribed to" if self.subscribed else "unsubscribed from"
        return f"{self.learner_id} {verb} {self.category or 'all marketing'}"


class SuppressionReason(models.TextChoices):
    BOUNCE = "bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    REJECTED = "rejected", "Rejected by the provider"
    MANUAL = "manual", "Added by hand"


class EmailSuppression(models.Model):
    """An address nothing is sent to (not even transactional mail): bounced or complained.

    Stored lower-cased; the provider's tracking webhooks add rows (campaigns.delivery)."""

    email = models.EmailField(unique=True)
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"

    def save(self, *args, **kwargs):
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)
