"""Campaigns: what was sent to whom, and what became of it.

``Send`` is the row every message is, created before anything leaves and updated as it
travels (issue 7 adds the campaign, trigger occurrence, arm and offer that decided it);
``SendEvent`` is its history: sent, delivered, opened, clicked, bounced, complained,
unsubscribed, failed.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from learners.models import Learner, MessageCategory


class SendStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    CONVERTED = "converted", "Converted"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"


class Send(models.Model):
    learner = models.ForeignKey(Learner, on_delete=models.PROTECT, related_name="sends")
    channel = models.CharField(max_length=10, default="email")
    category = models.CharField(
        max_length=20, choices=MessageCategory.choices, default=MessageCategory.OFFERS
    )
    template_version = models.ForeignKey(
        "message_templates.MessageTemplateVersion",
        on_delete=models.PROTECT,
        related_name="sends",
        help_text="The exact version rendered.",
    )
    locale = models.CharField(max_length=10, blank=True)
    to_email = models.EmailField(blank=True, help_text="The address used, as it was then.")
    subject = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=12, choices=SendStatus.choices, default=SendStatus.QUEUED, db_index=True
    )
    status_reason = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    is_test = models.BooleanField(default=False)
    message_id = models.CharField(
        max_length=255, blank=True, help_text="The Message-ID header of the email that left."
    )
    provider_message_id = models.CharField(
        max_length=255, blank=True, help_text="The email provider's id (tracking webhooks)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    clicks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["learner", "created_at"], name="send_learner_idx"),
            # Tracking webhooks find a send by the provider's id.
            models.Index(
                fields=["provider_message_id"],
                name="send_provider_id_idx",
                condition=~Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"Send {self.pk} to {self.learner_id} ({self.status})"


class SendEventKind(models.TextChoices):
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    FAILED = "failed", "Failed"
    DEFERRED = "deferred", "Deferred (will retry)"


class SendEvent(models.Model):
    send = models.ForeignKey(Send, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=SendEventKind.choices)
    at = models.DateTimeField(default=timezone.now)
    detail = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["send", "kind"], name="sendevent_send_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"
