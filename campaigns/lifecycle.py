"""A campaign's life: draft → in review → active ⇄ paused → archived, and what each step needs.

Going active needs a template with a saved version, an offer for an upsell, a moment that
allows offers, an experiment that has started, valid trigger parameters — and, for a campaign
that requires its creator's approval, an approval that still holds (``campaigns.approval``).
A refused step raises ``CampaignError`` with the reasons in words a marketer can act on.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from experiments.models import Status as ExperimentStatus

from .approval import approval_problems
from .errors import CampaignError
from .models import Campaign, CampaignStatus

__all__ = [
    "CampaignError",
    "activation_problems",
    "campaign_activate",
    "campaign_pause",
    "campaign_submit",
]


def activation_problems(campaign: Campaign) -> list[str]:
    """Everything that keeps ``campaign`` from going active (empty: nothing)."""
    problems = []
    template = campaign.email_template or campaign.in_app_template
    if template is None:
        problems.append("needs an email or in-app template")
    elif not template.versions.exists():
        problems.append(f"template {template} has no saved version")
    if campaign.is_marketing and campaign.is_upsell and not campaign.moment.offers_allowed:
        # Re-engagement is what an offer-free moment ("declining engagement") is for.
        problems.append(f"the moment '{campaign.moment}' is kept offer-free")
    if campaign.is_marketing and campaign.is_upsell and campaign.offer_id is None:
        problems.append("an upsell or cross-sell campaign needs an offer")
    if campaign.offer is not None and not campaign.offer.is_active:
        problems.append(f"the offer '{campaign.offer}' is inactive")
    experiment = campaign.experiment
    # A decided experiment is applied by the evaluation (campaigns.decisions); a draft one
    # has not started.
    if experiment is not None and experiment.status == ExperimentStatus.DRAFT:
        problems.append(f"its experiment '{experiment}' is {experiment.get_status_display()}")
    if campaign.requires_creator_approval:
        problems += approval_problems(campaign)
    try:
        campaign.clean()
    except ValidationError as exc:
        problems += [
            f"{field}: {message}"
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return problems


@transaction.atomic
def campaign_activate(*, campaign: Campaign) -> Campaign:
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    problems = activation_problems(locked)
    if problems:
        raise CampaignError(problems)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.ACTIVE, updated_at=timezone.now()
    )
    campaign.refresh_from_db()
    return campaign


def campaign_submit(*, campaign: Campaign) -> Campaign:
    """Send a draft for review (the course's creator approves it)."""
    if campaign.status != CampaignStatus.DRAFT:
        raise CampaignError([f"only a draft can be sent for review, not {campaign.status}"])
    campaign.status = CampaignStatus.IN_REVIEW
    campaign.save(update_fields=["status", "updated_at"])
    return campaign


def campaign_pause(*, campaign: Campaign) -> Campaign:
    if campaign.status != CampaignStatus.ACTIVE:
        raise CampaignError([f"only an active campaign can be paused, not {campaign.status}"])
    campaign.status = CampaignStatus.PAUSED
    campaign.save(update_fields=["status", "updated_at"])
    return campaign
