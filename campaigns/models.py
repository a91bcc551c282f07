"""Campaigns: journey moments, campaigns and their triggers and guardrails, and what was sent.

A ``Campaign`` is a journey moment + a trigger + an optional audience segment + an offer + a
template per channel + guardrail overrides + a priority + an optional experiment. Evaluating
the active campaigns (``campaigns.evaluate``) turns trigger occurrences into ``Send`` rows —
queued, or suppressed with the rule that stopped them — before anything leaves; delivery moves
them on. ``SendEvent`` is a send's history: sent, delivered, opened, clicked, bounced,
complained, unsubscribed, failed.

One module past 400 lines: these are the app's tables, read beside its migrations, and they
point at one another (a send at its campaign and moment, a candidate at both); the code that
acts on them lives in the modules named for that work.
"""

from __future__ import annotations

from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact
from django.utils import timezone

from expansion.core.singleton import SingletonModel
from learners.models import AccountRole, Learner, MessageCategory

# TriggerKind is defined with the trigger parameters (the trigger queries read it too) and is
# importable from here.
from .trigger_params import TriggerKind, trigger_params_errors


class JourneyMoment(models.Model):
    """A point in the learner's journey where an offer may (or deliberately may not) appear."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    offers_allowed = models.BooleanField(
        default=True,
        help_text="Off: a moment kept offer-free (mid support ticket, billing trouble, an "
        "outage). An upsell or cross-sell campaign on it cannot be activated; re-engagement "
        "can.",
    )
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class Purpose(models.TextChoices):
    """What a campaign is for; the guardrails apply by purpose (seed 000: "Low LPS: focus on
    re-engagement, not expansion"; seed 003: "At-risk: never upsell — focus on
    re-engagement")."""

    UPSELL = "upsell", "Upsell / cross-sell (an offer)"
    REENGAGEMENT = (
        "reengagement",
        "Re-engagement (bring them back; at risk and low LPS do not stop it)",
    )
    TRANSACTIONAL = "transactional", "Transactional (receipts, account)"


def purpose_errors(*, purpose: str, category: str, has_offer: bool) -> dict[str, str]:
    """Why a purpose, category and offer do not go together (empty: they do). Transactional
    is all or nothing: the purpose and the category both transactional, and no offer — a
    transactional label on an offer would skip consent and every marketing guardrail."""
    transactional = Purpose.TRANSACTIONAL
    if purpose == transactional and category != MessageCategory.TRANSACTIONAL:
        return {"category": "a transactional campaign's category is Transactional"}
    if category == MessageCategory.TRANSACTIONAL and purpose != transactional:
        return {"purpose": "only a transactional campaign has the Transactional category"}
    if purpose == transactional and has_offer:
        return {"offer": "a transactional campaign carries no offer"}
    return {}


class Reentry(models.TextChoices):
    EVERY = "every", "Every occurrence of the trigger"
    ONCE = "once", "Once per learner, ever"
    COOLDOWN = "cooldown", "Again only after the cool-down"


class Rule(models.TextChoices):
    """Why a would-be send was stopped; stored on the suppressed send."""

    OFFER_FREE_MOMENT = "offer_free_moment", "Moment kept offer-free"
    NOT_REACHABLE = "not_reachable", "No consent, unsubscribed, opted out or address suppressed"
    GLOBAL_HOLDOUT = "global_holdout", "In the global holdout"
    REENTRY = "reentry", "Campaign's re-entry rule"
    AT_RISK = "at_risk", "At risk (declining engagement or stalled)"
    LOW_LPS = "low_lps", "LPS below the minimum"
    OPEN_TICKET = "open_ticket", "Open support ticket"
    PAYMENT_FAILED = "payment_failed", "Recent payment failure"
    REFUND = "refund", "Recent refund"
    DECLINED = "declined", "Declined an offer recently"
    BOUGHT = "bought", "Bought recently"
    ONBOARDING = "onboarding", "First days of onboarding (premium upsell)"
    SUPERSEDED = "superseded", "Another offer won this moment"
    CAP_ROLLING = "cap_rolling", "Frequency cap (rolling window)"
    CAP_DAY = "cap_day", "Frequency cap (calendar day, learner's time zone)"
    CAP_WEEK = "cap_week", "Frequency cap (calendar week, learner's time zone)"
    HOLDOUT = "holdout", "Experiment holdout"
    RFM_DO_NOT_PITCH = (
        "rfm_do_not_pitch",
        "RFM cell marked do-not-pitch (recently churned; at-risk previously valuable)",
    )
    OFFER_INACTIVE = "offer_inactive", "The offer is inactive (retired)"
    OWNS_PRODUCT = "owns_product", "Already has the offered product"
    ROLE = "role", "Not a role the campaign addresses"
    ONE_PER_ACCOUNT = "one_per_account", "Another member of the account got it"


class GuardrailPolicy(SingletonModel):
    """The guardrails every campaign obeys unless it overrides one (``Campaign.guardrails``).

    Defaults from seeds 001, 003 and 004. Caps count the messages of a channel created for a
    learner — queued, sending or sent onwards; suppressed and failed ones do not count.
    """

    email_cap = models.PositiveSmallIntegerField(
        default=2, help_text="Marketing emails per learner in any rolling window of…"
    )
    cap_window_days = models.PositiveSmallIntegerField(default=7, help_text="…this many days.")
    email_cap_day = models.PositiveSmallIntegerField(
        default=1, help_text="Per calendar day in the learner's time zone (0: no daily cap)."
    )
    email_cap_week = models.PositiveSmallIntegerField(
        default=3,
        help_text="Per calendar week (Monday–Sunday) in the learner's time zone (0: none).",
    )
    in_app_cap_day = models.PositiveSmallIntegerField(
        default=3, help_text="In-app offers per calendar day in the learner's time zone."
    )
    quiet_start = models.TimeField(
        default=time(21, 0), help_text="Quiet hours start (learner's local time)."
    )
    quiet_end = models.TimeField(
        default=time(8, 0), help_text="Quiet hours end; emails due inside wait until then."
    )
    min_lps = models.PositiveSmallIntegerField(
        default=40, help_text="No upsell below this LPS (seed 000: Low band)."
    )
    suppress_at_risk = models.BooleanField(default=True)
    suppress_open_ticket = models.BooleanField(default=True)
    suppress_payment_failed = models.BooleanField(default=True)
    suppress_refund = models.BooleanField(default=True)
    declined_days = models.PositiveSmallIntegerField(
        default=30, help_text="No offer for this many days after a declined one."
    )
    bought_days = models.PositiveSmallIntegerField(
        default=14, help_text="No offer for this many days after a purchase."
    )
    onboarding_days = models.PositiveSmallIntegerField(
        default=30, help_text="No premium upsell in a learner's first days (seed 003)."
    )
    multi_trigger_boost = models.PositiveSmallIntegerField(
        default=10,
        help_text="Priority added for each further campaign a learner triggers at once.",
    )
    pause_after_failures = models.PositiveSmallIntegerField(
        default=10,
        help_text="A campaign whose sends fail this many times in a row for the same reason "
        "pauses itself and says why (0: never).",
    )
    attribution_days = models.PositiveSmallIntegerField(
        default=7,
        help_text="An order is credited to the learner's last clicked (else opened, else "
        "seen) send within this many days before it.",
    )

    class Meta:
        verbose_name = "guardrail policy"
        verbose_name_plural = "guardrail policy"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="guardrailpolicy_single")]

    def __str__(self) -> str:
        return "Guardrail policy"


OVERRIDABLE = (
    "email_cap",
    "cap_window_days",
    "email_cap_day",
    "email_cap_week",
    "min_lps",
    "suppress_at_risk",
    "suppress_open_ticket",
    "suppress_payment_failed",
    "suppress_refund",
    "declined_days",
    "bought_days",
    "onboarding_days",
)


class Campaign(models.Model):
    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    moment = models.ForeignKey(JourneyMoment, on_delete=models.PROTECT, related_name="campaigns")
    trigger = models.CharField(max_length=30, choices=TriggerKind.choices)
    trigger_params = models.JSONField(
        default=dict, blank=True, help_text="The trigger's parameters; see the reference."
    )
    send_within_hours = models.PositiveIntegerField(
        default=24,
        help_text="The send window: an occurrence older than this is no longer acted on.",
    )
    segment = models.ForeignKey(
        "learners.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="Audience: only current members (empty: everyone the trigger finds).",
    )
    course = models.ForeignKey(
        "learners.Course",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="The course it is about: restricts course triggers, and its creator reviews.",
    )
    offer = models.ForeignKey(
        "expansion.Offer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="The offer (its fallback is the downsell).",
    )
    email_template = models.ForeignKey(
        "message_templates.MessageTemplate",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="email_campaigns",
    )
    in_app_template = models.ForeignKey(
        "message_templates.MessageTemplate",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="in_app_campaigns",
    )
    category = models.CharField(
        max_length=20, choices=MessageCategory.choices, default=MessageCategory.OFFERS
    )
    purpose = models.CharField(
        max_length=20,
        choices=Purpose.choices,
        default=Purpose.UPSELL,
        help_text="At risk, low LPS and offer-free moments stop upsell and cross-sell "
        "campaigns, never re-engagement; the offer guardrails (RFM do-not-pitch, owns it, "
        "declined, bought, onboarding) stop any campaign that carries an offer. Transactional: "
        "category Transactional and no offer.",
    )
    target_roles = models.JSONField(
        default=list,
        blank=True,
        help_text="Account-level triggers reach these roles of the account (a list of "
        '"admin", "billing_owner", "member"; empty: every member).',
    )
    one_per_account = models.BooleanField(
        default=True,
        help_text="Account-level triggers: one send per account (its first addressed member "
        "by role), not one per member.",
    )
    priority = models.SmallIntegerField(
        default=100, help_text="Higher wins when several offers meet at one moment."
    )
    reentry = models.CharField(max_length=10, choices=Reentry.choices, default=Reentry.EVERY)
    reentry_days = models.PositiveSmallIntegerField(
        default=30, help_text="Cool-down for 'again only after the cool-down'."
    )
    guardrails = models.JSONField(
        default=dict,
        blank=True,
        help_text="Overrides of the guardrail policy for this campaign, e.g. "
        '{"email_cap": 1, "min_lps": 60}.',
    )
    premium_upsell = models.BooleanField(
        default=False, help_text="Kept out of a learner's first days of onboarding."
    )
    experiment = models.ForeignKey(
        "experiments.Experiment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="Variants and holdout: learners are assigned when they first qualify.",
    )
    status = models.CharField(
        max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    requires_creator_approval = models.BooleanField(
        default=True, help_text="The course's creator approves before it can go active."
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_email_version = models.ForeignKey(
        "message_templates.MessageTemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The email template version the creator approved (what is sent).",
    )
    approved_in_app_version = models.ForeignKey(
        "message_templates.MessageTemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The in-app template version the creator approved (what is shown).",
    )
    approved_fingerprint = models.CharField(
        max_length=64,
        blank=True,
        help_text="What was approved (the campaign's reviewable fields and its offer's terms); "
        "a change sends the campaign back to review.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    paused_reason = models.CharField(
        max_length=500,
        blank=True,
        help_text="Why it paused itself (its sends kept failing); empty when paused by hand.",
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    failure_streak = models.PositiveIntegerField(
        default=0, help_text="Sends failed in a row for the same reason (a delivery resets it)."
    )
    failure_reason = models.CharField(
        max_length=500, blank=True, help_text="The reason of the current failure streak."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]
        indexes = [models.Index(fields=["status"], name="campaign_status_idx")]
        permissions = [("approve_campaign", "Can approve campaigns touching their own course")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = trigger_params_errors(self.trigger, self.trigger_params)
        if errors:
            raise ValidationError({"trigger_params": errors})
        roles = self.target_roles
        if not isinstance(roles, list) or not all(r in AccountRole.values for r in roles):
            raise ValidationError(
                {
                    "target_roles": "a list of roles among "
                    f'{", ".join(AccountRole.values)}, e.g. ["admin", "billing_owner"]'
                }
            )
        coherence = purpose_errors(
            purpose=self.purpose, category=self.category, has_offer=self.offer_id is not None
        )
        if coherence:
            raise ValidationError(coherence)
        unknown = sorted(set(self.guardrails or {}) - set(OVERRIDABLE))
        if unknown:
            raise ValidationError(
                {
                    "guardrails": f"unknown guardrail(s) {', '.join(unknown)}; "
                    f"overridable: {', '.join(OVERRIDABLE)}"
                }
            )

    @property
    def is_marketing(self) -> bool:
        """Everything but a transactional campaign — purpose and category transactional, no
        offer — gets the marketing guardrails and caps (``clean`` refuses any other mix, and a
        row saved before it did is treated as marketing, never exempted)."""
        return not (
            self.category == MessageCategory.TRANSACTIONAL
            and self.purpose == Purpose.TRANSACTIONAL
            and self.offer_id is None
        )

    @property
    def channel(self) -> str:
        """The channel its sends go by: email with an email template, else in-app."""
        return "email" if self.email_template_id else "in_app"

    @property
    def is_upsell(self) -> bool:
        """Upsell or cross-sell: at risk and low LPS stop it (a re-engagement campaign is for
        exactly those learners), and so does a moment kept offer-free. A "transactional"
        purpose on a marketing campaign (a row saved before ``clean`` refused the mix) counts
        as an upsell: the strictest rules, never an exemption."""
        return self.purpose == Purpose.UPSELL or (
            self.purpose == Purpose.TRANSACTIONAL and self.is_marketing
        )

    @property
    def carries_offer(self) -> bool:
        """An upsell, or any campaign with an offer: the offer guardrails (RFM do-not-pitch,
        owns the product, declined, bought, onboarding for a premium upsell, an inactive
        offer) apply to it, re-engagement included."""
        return self.is_upsell or self.offer_id is not None


class Candidate(models.Model):
    """A would-be send of one evaluation, while its guardrails are applied (deleted after).

    Scratch rows, written and deleted within one evaluation: the table is unlogged and carries
    no foreign-key constraints and no index but its unique key (which leads with ``run``).
    Seven indexes and a constraint check per row made writing 100,000 candidates cost 1.9 s,
    and every guardrail's update rewrote them (bench/dispatch.py).
    """

    run = models.UUIDField()
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    learner = models.ForeignKey(
        Learner, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    occurrence_key = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    course = models.ForeignKey(
        "learners.Course",
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    detail = models.CharField(max_length=300, blank=True)
    moment = models.ForeignKey(
        JourneyMoment,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    channel = models.CharField(max_length=10)
    priority = models.IntegerField()
    rule = models.CharField(max_length=20, blank=True)
    arm = models.ForeignKey(
        "experiments.Arm",
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    scheduled_for = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "campaign", "learner", "occurrence_key", "channel"],
                name="candidate_unique",
            )
        ]


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
    DISMISSED = "dismissed", "Dismissed (in-app)"


class DismissReason(models.TextChoices):
    """Why a learner dismissed an in-app offer ("not now" feeds the decline guardrail)."""

    NOT_NOW = "not_now", "Not now"
    NOT_RELEVANT = "not_relevant", "Not relevant to me"
    TOO_EXPENSIVE = "too_expensive", "Too expensive"
    ALREADY_HAVE = "already_have", "I already have it"
    OTHER = "other", "Other"


def status_now(status: str) -> Exact:
    """``status = <status>`` for a statement that finds its send by primary key, written so
    that it stays a primary-key lookup: as a plain condition it lets PostgreSQL prefer the
    partial index of the queued or the sending rows (send_due_order_idx, send_sending_idx:
    statistics taken before a claim promise one row either way) and read all of them for
    each send — 0.7 ms of its CPU an email in a 1,000-email chunk (bench/delivery.py)."""
    return Exact(Coalesce("status", Value("")), status)


class Send(models.Model):
    learner = models.ForeignKey(Learner, on_delete=models.PROTECT, related_name="sends")
    campaign = models.ForeignKey(
        Campaign,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sends",
        help_text="Empty for test sends.",
    )
    occurrence_key = models.CharField(
        max_length=200, blank=True, help_text="The trigger occurrence it answers."
    )
    trigger = models.CharField(max_length=30, choices=TriggerKind.choices, blank=True)
    moment = models.ForeignKey(
        JourneyMoment, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    arm = models.ForeignKey(
        "experiments.Arm", null=True, blank=True, on_delete=models.PROTECT, related_name="sends"
    )
    offer = models.ForeignKey(
        "expansion.Offer", null=True, blank=True, on_delete=models.PROTECT, related_name="sends"
    )
    course = models.ForeignKey(
        "learners.Course", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(
        max_length=500, blank=True, help_text="Why this learner, now, in plain words."
    )
    rule = models.CharField(
        max_length=20, choices=Rule.choices, blank=True, help_text="The guardrail that stopped it."
    )
    priority = models.IntegerField(null=True, blank=True)
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="Not before (quiet hours, retry backoff)."
    )
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a dispatcher last claimed it."
    )
    handoff_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was handed to the mail server."
    )
    lease = models.UUIDField(
        null=True,
        blank=True,
        help_text="The dispatch lease it is claimed under (a DispatchLease, while sending).",
    )
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
    status = models.CharField(max_length=12, choices=SendStatus.choices, default=SendStatus.QUEUED)
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
    seen_at = models.DateTimeField(
        null=True, blank=True, help_text="In-app: when the offer card was first shown."
    )
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismiss_reason = models.CharField(max_length=20, choices=DismissReason.choices, blank=True)
    converted_order = models.OneToOneField(
        "expansion.Order",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attributed_send",
        help_text="The order credited to this send (at most one; an order credits one send).",
    )
    converted_at = models.DateTimeField(null=True, blank=True)
    revenue = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="Net of refunds."
    )

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
            # Dispatch claims the queued sends that are due, oldest first (ORDER BY
            # scheduled_for, id): read in index order, a claim stops after its chunk. On
            # scheduled_for alone, every claim sorted all the queued rows that share one time
            # (an evaluation's 100,000: ~120 ms a claim, on disk, bench/dispatch.py).
            models.Index(
                fields=["scheduled_for", "id"],
                name="send_due_order_idx",
                condition=Q(status="queued"),
            ),
            # Recovery finds the sends left claimed (its own small index: no index on status
            # alone, whose "few queued rows" statistics after a large evaluation drew the
            # dispatch claim off the due index).
            models.Index(
                fields=["claimed_at"], name="send_sending_idx", condition=Q(status="sending")
            ),
            models.Index(fields=["campaign", "status"], name="send_campaign_status_idx"),
            # The admin's send list, newest first, and its date hierarchy's MIN/MAX: read in
            # index order, a page stops after 100 rows (at 1,000,000 sends it sorted them all).
            models.Index(fields=["created_at", "id"], name="send_created_idx"),
            # The send list's search by Message-ID.
            models.Index(
                fields=["message_id"], name="send_message_id_idx", condition=~Q(message_id="")
            ),
        ]
        constraints = [
            # One send per learner × campaign × trigger occurrence (× channel), whatever
            # retries or concurrent evaluations do.
            models.UniqueConstraint(
                fields=["campaign", "learner", "occurrence_key", "channel"],
                name="send_one_per_occurrence",
                condition=Q(campaign__isnull=False),
            )
        ]

    def __str__(self) -> str:
        # From the row's own columns (no query: lists and inlines draw many).
        what = self.subject or self.get_trigger_display() or "message"
        to = self.to_email or f"learner {self.learner_id}"
        channel = {"email": "Email", "in_app": "In-app card"}.get(self.channel, self.channel)
        return f"{channel} #{self.pk} to {to}: {what} ({self.get_status_display()})"


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
    RETRIED = "retried", "Queued again by hand (after a fix)"
    SERVED = "served", "Served to the app"
    SEEN = "seen", "Seen (in-app impression)"
    ACCEPTED = "accepted", "Accepted"
    DISMISSED = "dismissed", "Dismissed"


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


class DispatchLease(models.Model):
    """A dispatcher's claim on a chunk of sends: valid while ``expires_at`` is ahead, renewed
    by its worker's heartbeat while it works (``campaigns.dispatch``).

    Recovery takes the sends of expired leases only, and deletes the lease in the same
    transaction; a worker renews (and checks) its lease in the transaction that marks each
    message as handed over, so a worker that lost its lease stops before sending anything
    else. Both are conditional updates of this one row, so they cannot both win.
    """

    id = models.UUIDField(primary_key=True)
    worker = models.CharField(max_length=200, help_text="host:pid of the dispatcher.")
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="dispatchlease_expiry_idx")]

    def __str__(self) -> str:
        return f"Lease {self.id} ({self.worker})"


class MailCircuit(SingletonModel):
    """The circuit breaker in front of the mail server, shared by every dispatcher.

    Opened when the server cannot be reached (connect refused, timed out, disconnected): no
    dispatcher claims anything until ``open_until``; then one chunk probes it. Each failure in
    a row doubles the pause (5 s … ``MAX_PAUSE``); a connection the server accepts again
    closes it.
    """

    failures = models.PositiveIntegerField(default=0)
    open_until = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "mail server circuit"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="mailcircuit_single")]

    def __str__(self) -> str:
        return "Mail server circuit"
