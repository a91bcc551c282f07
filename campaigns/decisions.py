"""An experiment's decision, applied to the campaigns that run it (issue 17: retiring the
losing offer left the campaign sending it).

The experiments layer decides and says what it means (``experiments.cards.decision_applied``);
this applies it to each campaign, once, before the campaign is evaluated: roll out → the
campaign's offer becomes the winner's; keep control → the control arm's offer, or, with no
control arm (the holdout won), the campaign pauses and says why; inconclusive → no change.
Idempotent: a campaign already carrying the decided offer is left alone.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from experiments.cards import decision_applied
from experiments.models import Status

from .models import Campaign, CampaignStatus

log = logging.getLogger(__name__)


def decisions_apply(*, campaigns: list[Campaign]) -> list[Campaign]:
    """Apply the decided experiments of ``campaigns``; returns the campaigns still to be
    evaluated (a paused one is left out), with their offer updated in memory too."""
    kept = []
    for campaign in campaigns:
        experiment = campaign.experiment
        if experiment is None or experiment.status != Status.DECIDED:
            kept.append(campaign)
            continue
        outcome = decision_applied(experiment=experiment)
        if outcome is None:
            kept.append(campaign)
            continue
        if outcome.offer_nothing:
            Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.ACTIVE).update(
                status=CampaignStatus.PAUSED,
                paused_at=timezone.now(),
                paused_reason=f"its experiment '{experiment}' was decided for the holdout: "
                "sending nothing won",
            )
            log.warning("campaign %s paused: its experiment's holdout won", campaign.pk)
            continue
        if outcome.offer is not None and campaign.offer_id != outcome.offer.pk:
            Campaign.objects.filter(pk=campaign.pk).update(offer=outcome.offer)
            campaign.offer = outcome.offer
            log.info("campaign %s now offers the decided %s", campaign.pk, outcome.offer.pk)
        kept.append(campaign)
    return kept
