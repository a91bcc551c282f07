"""A campaign's life: draft → in review → active ⇄ paused → archived, and what each step needs."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from experiments.models import Status as ExperimentStatus

from .models import Campaign, CampaignStatus


class CampaignError(Exception):
    """The step is refused; ``problems`` says why, each in words a marketer can act on."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def activation_problems(campaign: Campaign) -> list[str]:
    """Everything that keeps ``campaign`` from going active (empty: nothing)."""
    problems = []
    template = campaign.email_template or campaign.in_app_template
    if template is None:
        problems.append("needs an email or in-app template")
    elif not template.versions.exists():
        problems.append(f"template {template} has no saved version")
    if campaign.is_marketing and not campaign.moment.offers_allowed:
        problems.append(f"the moment '{campaign.moment}' is kept offer-free")
    if campaign.is_marketing and campaign.offer_id is None:
        problems.append("a marketing campaign needs an offer")
    if campaign.offer is not None and not campaign.offer.is_active:
        problems.append(f"the offer '{campaign.offer}' is inactive")
    experiment = campaign.experiment
    if experiment is not None and experiment.status != ExperimentStatus.RUNNING:
        problems.append(f"its experiment '{experiment}' is {experiment.get_status_display()}")
    if (
        campaign.requires_creator_approval
        and campaign.course_id is not None
        and campaign.approved_at is None
    ):
        problems.append(f"waits for the approval of {campaign.course}'s creator")
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
    problems = activation_problems(campaign)
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


def campaign_approve(*, campaign: Campaign, user) -> Campaign:
    """The course's creator (or a marketer with the right) approves what goes out."""
    campaign.approved_by = user
    campaign.approved_at = timezone.now()
    campaign.save(update_fields=["approved_by", "approved_at", "updated_at"])
    return campaign


def campaign_pause(*, campaign: Campaign) -> Campaign:
    if campaign.status != CampaignStatus.ACTIVE:
        raise CampaignError([f"only an active campaign can be paused, not {campaign.status}"])
    campaign.status = CampaignStatus.PAUSED
    campaign.save(update_fields=["status", "updated_at"])
    return campaign
