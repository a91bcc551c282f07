"""Triggers: which learners a campaign's trigger finds now, one row per trigger occurrence.

Each trigger is a set of querysets (usually one) whose rows carry the same five columns
(``campaigns.triggers.columns``). ``campaigns.evaluate`` inserts them into the candidates
table with one ``INSERT … SELECT`` each: no loop over learners. The trigger kinds, their
parameters and defaults are in ``campaigns.trigger_params`` (checked when a campaign is saved).

The queries live by family: ``learning`` (the course journey), ``account`` (plan, usage, team,
renewal, purchases) and ``custom`` (segments and custom events).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from ..models import Campaign
from ..trigger_params import PARAMS, TriggerKind
from . import account, custom, learning
from .account import LIVE
from .columns import COLUMNS
from .learning import phrase_normal

__all__ = ["COLUMNS", "LIVE", "PARAMS", "params_for", "phrase_normal", "trigger_rows"]

BUILDERS: dict[str, Callable[[Campaign, dict, datetime, datetime], list[QuerySet]]] = {
    TriggerKind.FINAL_MODULE: learning.final_module,
    TriggerKind.ASSESSMENT_HIGH: learning.assessment_high,
    TriggerKind.STALL: learning.stall,
    TriggerKind.CURRICULUM_EXHAUSTED: learning.curriculum_exhausted,
    TriggerKind.USAGE_THRESHOLD: account.usage,
    TriggerKind.SEAT_SATURATION: account.seats,
    TriggerKind.RATE_LIMITED: account.rate_limited,
    TriggerKind.PREMIUM_FEATURE: account.premium_feature,
    TriggerKind.INTEGRATION: account.integration,
    TriggerKind.TEAM_GROWTH: account.team_growth,
    TriggerKind.RENEWAL: account.renewal,
    TriggerKind.AFTER_PURCHASE: account.after_purchase,
    TriggerKind.CROSS_SELL: learning.cross_sell,
    TriggerKind.SEGMENT_ENTRY: custom.segment_entry,
    TriggerKind.CUSTOM_EVENT: custom.custom,
}


def params_for(campaign: Campaign) -> dict[str, Any]:
    """The campaign's trigger parameters, each missing one at its default."""
    spec = PARAMS[campaign.trigger]
    return {name: campaign.trigger_params.get(name, p.default) for name, p in spec.items()}


def trigger_rows(campaign: Campaign, *, now: datetime) -> list[QuerySet]:
    """The querysets of this campaign's trigger occurrences inside its send window."""
    since = now - timedelta(hours=campaign.send_within_hours)
    return BUILDERS[campaign.trigger](campaign, params_for(campaign), since, now)
