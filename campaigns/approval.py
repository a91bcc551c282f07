"""A campaign's approval by its course's creator, what it pins, and when it no longer holds.

A campaign that requires its creator's approval is pinned to what the creator approved: the
template versions in force then (what is sent, ``campaign_versions``) and a fingerprint of its
reviewable fields and its offer's terms (``approval_fingerprint``). Any change since —
a newer template version, an edited field, an offer's new price — withdraws the approval and
sends the campaign back to review (``campaign_back_to_review``; ``campaigns_back_to_review``
at the start of every evaluation), and ``approval_drift`` says what changed, in words.

What was reviewed is kept in the approval's entry of the admin's history (who, when, what),
so the drift can name the field that changed; the campaign's row holds only the fingerprint.

Approvals given before the moment, the re-entry rule and its cool-down and the premium-upsell
setting were reviewed (``COVERED_SINCE_V2``) are compared on what they covered: their
fingerprint is of the terms without those, so they still hold while nothing they covered
changes, and the next approval covers everything. No data migration guesses what a creator
saw then.

One module just past 400 lines: what is pinned, its fingerprint and the drift in words are one
rule read together (a field added to one and not the others would silently go unreviewed).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from templates.models import MessageTemplateVersion

from .errors import CampaignError
from .models import Campaign, CampaignStatus
from .roles import may_approve

# What a creator reviews, in the words the drift uses ("its offer's price changed").
REVIEWED: dict[str, str] = {
    "trigger": "its trigger",
    "trigger_params": "its trigger parameters",
    "send_within_hours": "its send window",
    "segment": "its segment",
    "course": "its course",
    "offer": "its offer",
    "email_template": "its email template",
    "in_app_template": "its in-app template",
    "category": "its category",
    "purpose": "its purpose",
    "guardrails": "its guardrail overrides",
    "priority": "its priority",
    "target_roles": "its target roles",
    "one_per_account": "its one-send-per-account setting",
    "experiment": "its experiment",
    "moment": "its moment",
    "reentry": "its re-entry rule",
    "reentry_days": "its re-entry cool-down (days)",
    "premium_upsell": "its premium-upsell setting",
    "offer.product": "its offer's product",
    "offer.price": "its offer's price",
    "offer.incentive": "its offer's incentive",
    "offer.discount_percent": "its offer's discount",
    "offer.bonus": "its offer's bonus",
    "offer.positioning": "its offer's positioning",
    "offer.cta_url": "its offer's call-to-action URL",
    "offer.valid_hours": "its offer's validity (hours)",
    "offer.is_active": "its offer's availability",
}
# Short values worth showing beside the change ("(99.00 USD → 120.00 USD)").
SHOWN = {
    "send_within_hours",
    "reentry",
    "reentry_days",
    "premium_upsell",
    "category",
    "purpose",
    "priority",
    "offer.price",
    "offer.incentive",
    "offer.discount_percent",
    "offer.valid_hours",
}
# Reviewed since approvals' second version: an approval given before covers the rest only.
COVERED_SINCE_V2 = ("moment", "reentry", "reentry_days", "premium_upsell")
APPROVAL_LOG = "Approved: "
TERMS_MARK = "\nReviewed terms: "  # json.dumps never writes a raw newline: the last one is ours
LEGACY = "it was approved before approvals named their template versions"
UNKNOWN = "its reviewed settings or its offer's terms changed"
NOT_APPROVED = "it has not been approved"
RESTING = (CampaignStatus.DRAFT, CampaignStatus.ARCHIVED)  # stay as they are when withdrawn


def approval_problems(campaign: Campaign) -> list[str]:
    """What keeps a campaign that requires approval from going active, as far as its approval
    goes (empty: its approval holds)."""
    course = campaign.course
    if course is None:
        return ["needs a course whose creator approves it, or switch off Requires creator approval"]
    if course.creator_id is None:
        return [
            f"its course {course} has no creator to approve it: set the course's creator, or "
            "switch off Requires creator approval"
        ]
    if campaign.approved_at is None:
        return [f"waits for the approval of {course}'s creator"]
    if not campaign.approved_fingerprint:
        return [f"waits for the approval of {course}'s creator again ({LEGACY})"]
    drift = approval_drift(campaign=campaign)
    return [f"changed since it was approved: {'; '.join(drift)}"] if drift else []


def approval_terms(*, campaign: Campaign) -> dict[str, Any]:
    """What a creator reviews: the campaign's reviewable fields (related rows by id) and its
    offer's terms, as JSON-ready values keyed as in ``REVIEWED``."""
    terms: dict[str, Any] = {
        "trigger": campaign.trigger,
        "trigger_params": campaign.trigger_params,
        "send_within_hours": campaign.send_within_hours,
        "segment": campaign.segment_id,
        "course": campaign.course_id,
        "offer": campaign.offer_id,
        "email_template": campaign.email_template_id,
        "in_app_template": campaign.in_app_template_id,
        "category": campaign.category,
        "purpose": campaign.purpose,
        "guardrails": campaign.guardrails,
        "priority": campaign.priority,
        "target_roles": campaign.target_roles,
        "one_per_account": campaign.one_per_account,
        "experiment": campaign.experiment_id,
        "moment": campaign.moment_id,
        "reentry": campaign.reentry,
        "reentry_days": campaign.reentry_days,
        "premium_upsell": campaign.premium_upsell,
    }
    offer = campaign.offer
    if offer is not None:
        product = offer.product
        terms |= {
            "offer.product": offer.product_id,
            "offer.price": f"{Decimal(str(product.price)):.2f} {product.currency}",
            "offer.incentive": offer.incentive,
            "offer.discount_percent": offer.discount_percent,
            "offer.bonus": offer.bonus,
            "offer.positioning": offer.positioning,
            "offer.cta_url": offer.cta_url,
            "offer.valid_hours": offer.valid_hours,
            "offer.is_active": offer.is_active,
        }
    return terms


def _fingerprint(terms: dict[str, Any]) -> str:
    canonical = json.dumps(terms, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def approval_fingerprint(*, campaign: Campaign) -> str:
    """The sha256 (hex) of what a creator reviews now (``approval_terms``, canonical JSON):
    equal to ``approved_fingerprint`` while nothing reviewed has changed since approval."""
    return _fingerprint(approval_terms(campaign=campaign))


def _v1(terms: dict[str, Any]) -> dict[str, Any]:
    """The terms as an approval of the first version covered them."""
    return {key: value for key, value in terms.items() if key not in COVERED_SINCE_V2}


def _holds(terms: dict[str, Any], fingerprint: str) -> bool:
    """Nothing the approval covered changed: the terms' fingerprint, or — for an approval
    given before ``COVERED_SINCE_V2`` were reviewed — the fingerprint of what it covered."""
    return fingerprint in (_fingerprint(terms), _fingerprint(_v1(terms)))


def approval_covers_everything(*, campaign: Campaign) -> bool:
    """False for an approval given before the moment, re-entry and premium-upsell setting
    were reviewed (it holds on the rest; approving again covers them)."""
    if not campaign.approved_fingerprint:
        return False
    entry = approval_entry(campaign=campaign)
    reviewed = _reviewed_terms(entry) if entry is not None else None
    if reviewed is not None:
        return set(COVERED_SINCE_V2) <= set(reviewed)
    return campaign.approved_fingerprint != _fingerprint(_v1(approval_terms(campaign=campaign)))


def _newest(template_id: int | None) -> MessageTemplateVersion | None:
    if template_id is None:
        return None
    return (
        MessageTemplateVersion.objects.filter(template_id=template_id)
        .select_related("template")
        .order_by("-number")
        .first()
    )


def _versions_text(email: MessageTemplateVersion | None, in_app: MessageTemplateVersion | None):
    return (
        f"email template {email or 'none'}; in-app template {in_app or 'none'}"
        if email or in_app
        else "no template"
    )


def _history_add(*, campaign: Campaign, user: Any, message: str) -> None:
    """A change entry of the campaign in the admin's history (who, when, what)."""
    LogEntry.objects.create(
        user_id=user.pk,
        content_type_id=ContentType.objects.get_for_model(Campaign).pk,
        object_id=str(campaign.pk),
        object_repr=str(campaign)[:200],
        action_flag=CHANGE,
        change_message=message,
    )


@transaction.atomic
def campaign_approve(*, campaign: Campaign, user: Any) -> Campaign:
    """The course's creator (or a superuser) approves what goes out: the newest version of
    each of its templates, pinned as what is sent, and the fingerprint of its reviewable
    fields and offer terms. Logged in the admin's history with what was reviewed. Refused
    (``CampaignError``, nothing changed) for anyone else, without a course whose creator can
    approve, or with a template that has no saved version."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    course = locked.course
    if course is None or course.creator_id is None:
        raise CampaignError(["has no course whose creator could approve it"])
    if not may_approve(user, course):
        raise CampaignError(["only the creator of the campaign's course can approve it"])
    email = _newest(locked.email_template_id)
    in_app = _newest(locked.in_app_template_id)
    missing = [
        f"template {template} has no saved version to approve"
        for template, version in ((locked.email_template, email), (locked.in_app_template, in_app))
        if template is not None and version is None
    ]
    if missing:
        raise CampaignError(missing)
    terms = approval_terms(campaign=locked)
    now = timezone.now()
    Campaign.objects.filter(pk=locked.pk).update(
        approved_by=user,
        approved_at=now,
        approved_email_version=email,
        approved_in_app_version=in_app,
        approved_fingerprint=_fingerprint(terms),
        updated_at=now,
    )
    _history_add(
        campaign=locked,
        user=user,
        message=f"{APPROVAL_LOG}{_versions_text(email, in_app)}{TERMS_MARK}"
        + json.dumps(terms, sort_keys=True),
    )
    campaign.refresh_from_db()
    return campaign


SENT_BACK_LOG = "Sent back: "


@transaction.atomic
def campaign_send_back(*, campaign: Campaign, user: Any, comment: str) -> Campaign:
    """The reviewer sends a campaign in review back to its marketer as a draft, with what to
    change (``comment``, required): logged in the admin's history, shown on its page
    (``sent_back_entry``). Refused (``CampaignError``, nothing changed) for anyone but the
    course's creator (or a superuser), for a campaign not in review, or without a comment."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    comment = " ".join((comment or "").split())
    if not may_approve(user, locked.course):
        raise CampaignError(["only the creator of the campaign's course can send it back"])
    if locked.status != CampaignStatus.IN_REVIEW:
        raise CampaignError([f"only a campaign in review can be sent back, not {locked.status}"])
    if not comment:
        raise CampaignError(["say what should change: the comment is required"])
    Campaign.objects.filter(pk=locked.pk).update(
        status=CampaignStatus.DRAFT, updated_at=timezone.now()
    )
    _history_add(campaign=locked, user=user, message=f"{SENT_BACK_LOG}{comment[:2000]}")
    campaign.refresh_from_db()
    return campaign


def sent_back_entry(*, campaign: Campaign) -> LogEntry | None:
    """The latest "sent back" of this campaign while it is still a draft (what the marketer
    should read on its page); None once it is in review again or beyond."""
    entry = (
        LogEntry.objects.filter(
            content_type_id=ContentType.objects.get_for_model(Campaign).pk,
            object_id=str(campaign.pk),
            change_message__startswith=SENT_BACK_LOG,
        )
        .select_related("user")
        .order_by("-action_time")
        .first()
    )
    if entry is None or campaign.status != CampaignStatus.DRAFT:
        return None
    return entry


def approval_entry(*, campaign: Campaign) -> LogEntry | None:
    """The admin-history entry of the campaign's latest approval (who, when, what was
    reviewed), or None when it was never approved since approvals were pinned."""
    if not campaign.approved_fingerprint:
        return None
    entries = LogEntry.objects.filter(
        content_type_id=ContentType.objects.get_for_model(Campaign).pk,
        object_id=str(campaign.pk),
        action_flag=CHANGE,
        change_message__startswith=APPROVAL_LOG,
    ).select_related("user")
    for entry in entries.order_by("-action_time", "-pk")[:5]:
        terms = _reviewed_terms(entry)
        if terms is not None and _fingerprint(terms) == campaign.approved_fingerprint:
            return entry
    return None


def _reviewed_terms(entry: LogEntry) -> dict[str, Any] | None:
    _, mark, text = entry.change_message.rpartition(TERMS_MARK)
    if not mark:
        return None
    try:
        terms = json.loads(text)
    except json.JSONDecodeError:
        return None
    return terms if isinstance(terms, dict) else None


def _version_drift(
    label: str,
    approved: MessageTemplateVersion | None,
    newest: MessageTemplateVersion | None,
    template: Any,
) -> str | None:
    if (approved.pk if approved else None) == (newest.pk if newest else None):
        return None
    if approved is None:
        return f"{label} {newest} was added (none was approved)"
    if newest is None:
        now = f"is now {template}, which has no saved version" if template else "was removed"
        return f"{label} {now} ({approved} was approved)"
    if approved.template_id == newest.template_id:
        if newest.number > approved.number:
            return (
                f"{label} has a newer version (v{newest.number}; v{approved.number} was approved)"
            )
        return f"{label} is at v{newest.number} (v{approved.number} was approved)"
    return f"{label} is now {newest} ({approved} was approved)"


def _term_drift(key: str, before: Any, after: Any) -> str:
    if key == "offer.is_active":
        return "its offer was deactivated" if before and not after else "its offer was reactivated"
    words = f"{REVIEWED.get(key, key)} changed"
    if key in SHOWN:
        words += f" ({'none' if before is None else before} → {'none' if after is None else after})"
    return words


def approval_drift(*, campaign: Campaign) -> list[str]:
    """What changed since the campaign's last approval, in words ("its email template has a
    newer version (v3; v2 was approved)", "its offer's price changed (99.00 USD → 120.00
    USD)"), template versions first, then the reviewed fields in ``REVIEWED`` order. Empty when
    nothing did, or when it was never approved. Kept after the approval is withdrawn, so the
    change page can say why it went back to review."""
    if not campaign.approved_fingerprint:
        return [LEGACY] if campaign.approved_at is not None else []
    drift = []
    email_drift = _version_drift(
        "its email template",
        campaign.approved_email_version,
        _newest(campaign.email_template_id),
        campaign.email_template,
    )
    in_app_drift = _version_drift(
        "its in-app template",
        campaign.approved_in_app_version,
        _newest(campaign.in_app_template_id),
        campaign.in_app_template,
    )
    drift += [words for words in (email_drift, in_app_drift) if words]
    now = approval_terms(campaign=campaign)
    if _holds(now, campaign.approved_fingerprint):
        return drift
    entry = approval_entry(campaign=campaign)
    reviewed = _reviewed_terms(entry) if entry is not None else None
    if reviewed is None:
        return [*drift, UNKNOWN]
    if not set(COVERED_SINCE_V2) & set(reviewed):
        now = _v1(now)  # approved before these were reviewed: compared on what it covered
    covered = {"email_template"} if email_drift else set()
    covered |= {"in_app_template"} if in_app_drift else set()
    for key in [*REVIEWED, *sorted((set(now) | set(reviewed)) - set(REVIEWED))]:
        if key in covered or reviewed.get(key) == now.get(key):
            continue
        if key.startswith("offer.") and (reviewed.get("offer") != now.get("offer")):
            continue  # another offer altogether: "its offer changed" says it
        drift.append(_term_drift(key, reviewed.get(key), now.get(key)))
    return drift


def campaign_versions(
    *, campaign: Campaign, dry_run: bool = False
) -> tuple[int | None, int | None]:
    """The (email, in-app) template version ids to send: the approved ones when the campaign
    requires approval (None while it has no approval, or for a template replaced since),
    else the newest of each template (None: no template, or no saved version).

    Read from the campaign's row (one query, two more for the newest versions), not from the
    instance: a stale instance never sends the versions of an approval withdrawn meanwhile.
    ``dry_run`` (the admin's "who would get it now"): the newest, which an approval now would
    pin, so a campaign under review can be previewed before its creator approves it."""
    row = (
        Campaign.objects.filter(pk=campaign.pk)
        .values(
            "requires_creator_approval",
            "approved_at",
            "email_template_id",
            "in_app_template_id",
            "approved_email_version_id",
            "approved_email_version__template_id",
            "approved_in_app_version_id",
            "approved_in_app_version__template_id",
        )
        .first()
    )
    if row is None:
        return (None, None)
    if dry_run or not row["requires_creator_approval"]:
        email, in_app = _newest(row["email_template_id"]), _newest(row["in_app_template_id"])
        return (email.pk if email else None, in_app.pk if in_app else None)
    if row["approved_at"] is None:
        return (None, None)
    return (
        row["approved_email_version_id"]
        if row["approved_email_version__template_id"] == row["email_template_id"]
        else None,
        row["approved_in_app_version_id"]
        if row["approved_in_app_version__template_id"] == row["in_app_template_id"]
        else None,
    )


def _withdrawal_reasons(campaign: Campaign) -> list[str]:
    if not campaign.requires_creator_approval or campaign.status == CampaignStatus.ARCHIVED:
        return []
    if campaign.approved_at is not None:
        return approval_drift(campaign=campaign)
    live = campaign.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
    return [NOT_APPROVED] if live else []


def campaign_back_to_review(*, campaign: Campaign, now: datetime | None = None) -> list[str]:
    """If the campaign requires approval and its approval no longer holds (something
    reviewed changed since, or it is active or paused without one), withdraw the approval
    (by whom and when; the pinned versions and fingerprint stay, as what was last approved)
    and set an active or paused campaign back to in review (a draft stays a draft). Returns
    why, in words; empty when nothing was done. A conditional update: a concurrent approval
    or status change wins, and then nothing is done here."""
    reasons = _withdrawal_reasons(campaign)
    if not reasons:
        return []
    now = now or timezone.now()
    status = campaign.status if campaign.status in RESTING else CampaignStatus.IN_REVIEW
    moved = Campaign.objects.filter(
        pk=campaign.pk,
        status=campaign.status,
        approved_at=campaign.approved_at,
        approved_fingerprint=campaign.approved_fingerprint,
    ).update(status=status, approved_by=None, approved_at=None, updated_at=now)
    campaign.refresh_from_db()
    return reasons if moved else []


def campaigns_back_to_review(*, now: datetime | None = None) -> int:
    """Every active or paused campaign that requires approval and whose approval no longer
    holds goes back to in review (``campaign_back_to_review``); returns how many. Run at
    the start of each evaluation: a few queries per such campaign, and nothing is written
    for the others (idempotent)."""
    now = now or timezone.now()
    live = Campaign.objects.filter(
        status__in=[CampaignStatus.ACTIVE, CampaignStatus.PAUSED], requires_creator_approval=True
    ).select_related(
        "offer__product",
        "course",
        "email_template",
        "in_app_template",
        "approved_email_version__template",
        "approved_in_app_version__template",
    )
    return sum(1 for campaign in live if campaign_back_to_review(campaign=campaign, now=now))
