"""What a trigger is and what it takes: the trigger kinds, their parameters and defaults
(seeds 001, 003 and 004), and the check a campaign's parameters pass when it is saved.

Both the models (``Campaign.trigger``'s choices, ``Campaign.clean``) and the trigger queries
(``campaigns.triggers``) read these; neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models


class TriggerKind(models.TextChoices):
    FINAL_MODULE = "final_module", "Final module completed"
    ASSESSMENT_HIGH = "assessment_high", "High assessment score mid-course"
    STALL = "stall", "Stall recovery (was active, now silent)"
    CURRICULUM_EXHAUSTED = "curriculum_exhausted", "Question implying the curriculum is exhausted"
    USAGE_THRESHOLD = "usage_threshold", "Usage at a share of the plan's quota"
    SEAT_SATURATION = "seat_saturation", "All seats in use"
    RATE_LIMITED = "rate_limited", "Repeated rate-limit hits"
    PREMIUM_FEATURE = "premium_feature", "Premium feature attempted"
    INTEGRATION = "integration", "Integration connected"
    TEAM_GROWTH = "team_growth", "Team growth (seat invitations)"
    RENEWAL = "renewal", "Renewal window"
    AFTER_PURCHASE = "after_purchase", "Right after a purchase (one-click upsell)"
    CROSS_SELL = "cross_sell", "Weeks after a course completion (cross-sell)"
    SEGMENT_ENTRY = "segment_entry", "Entered a segment"
    CUSTOM_EVENT = "custom_event", "Custom event with property filters"


@dataclass(frozen=True)
class Param:
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    item: type = str  # for lists: the type of their items


DEFAULT_PHRASES = [
    "what should i learn next",
    "what's next",
    "what is next",
    "more advanced",
    "next course",
    "finished everything",
    "anything else to learn",
]

PARAMS: dict[str, dict[str, Param]] = {
    TriggerKind.FINAL_MODULE: {},
    TriggerKind.ASSESSMENT_HIGH: {
        "min_score": Param(float, 80.0, 0, 100, "assessment score, 0–100"),
    },
    TriggerKind.STALL: {},
    TriggerKind.CURRICULUM_EXHAUSTED: {
        "phrases": Param(list, DEFAULT_PHRASES, help="case-insensitive phrases in the question"),
    },
    TriggerKind.USAGE_THRESHOLD: {
        "percent": Param(int, 80, 1, 1000, "share of the quota used, at least (70, 80 …)"),
        "upto": Param(
            int, 0, 0, 1000, "…and at most (seed 004: 70–85 %: percent 70, upto 85; 0: no limit)"
        ),
        "thresholds": Param(
            list,
            [],
            help="fire once at each of these shares as it is crossed, e.g. [80, 90, 100] "
            "(seed 002); empty: once at percent",
            item=int,
        ),
    },
    TriggerKind.SEAT_SATURATION: {},
    TriggerKind.RATE_LIMITED: {
        "min_hits": Param(int, 3, 1, 100_000),
        "days": Param(int, 7, 1, 365),
    },
    TriggerKind.PREMIUM_FEATURE: {},
    TriggerKind.INTEGRATION: {},
    TriggerKind.TEAM_GROWTH: {
        "min_invites": Param(int, 3, 1, 100_000),
        "days": Param(int, 30, 1, 365),
    },
    TriggerKind.RENEWAL: {
        "min_days": Param(int, 60, 0, 730, "renews in at least this many days…"),
        "max_days": Param(int, 90, 1, 730, "…and at most this many"),
    },
    TriggerKind.AFTER_PURCHASE: {
        "sku": Param(str, "", help="only orders of this product (empty: any)"),
    },
    TriggerKind.CROSS_SELL: {
        "min_days": Param(int, 14, 0, 365, "days after completing a course: from…"),
        "max_days": Param(int, 28, 1, 365, "…to"),
    },
    TriggerKind.SEGMENT_ENTRY: {
        "segment": Param(int, None, help="id of the segment whose new members it finds"),
    },
    TriggerKind.CUSTOM_EVENT: {
        "kind": Param(str, None, help="custom.<name>"),
        "properties": Param(dict, {}, help="properties the event must carry, exactly"),
    },
}


def trigger_params_errors(kind: str, params: Any) -> list[str]:
    """What is wrong with ``params`` for a trigger of ``kind`` (empty list: nothing)."""
    if kind not in PARAMS:
        return [f"unknown trigger {kind!r}"]
    if not isinstance(params, dict):
        return ["must be an object"]
    spec = PARAMS[kind]
    errors = [f"unknown parameter {name!r}" for name in sorted(set(params) - set(spec))]
    for name, param in spec.items():
        if name not in params:
            if param.default is None:
                errors.append(f"{name}: required ({param.help})")
            continue
        value = params[name]
        ok = isinstance(value, param.kind) and not (
            param.kind in (int, float) and isinstance(value, bool)
        )
        if param.kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            errors.append(f"{name}: must be {param.kind.__name__}")
            continue
        if param.minimum is not None and value < param.minimum:
            errors.append(f"{name}: must be ≥ {param.minimum:g}")
        if param.maximum is not None and value > param.maximum:
            errors.append(f"{name}: must be ≤ {param.maximum:g}")
        if param.kind is list and param.item is str:
            if not all(isinstance(v, str) and v.strip() for v in value):
                errors.append(f"{name}: must be a list of non-empty strings")
        elif param.kind is list and not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000 for v in value
        ):
            errors.append(f"{name}: must be a list of whole percentages 1–1000")
    if kind == TriggerKind.CUSTOM_EVENT and not str(params.get("kind", "")).startswith("custom."):
        errors.append("kind: must start with 'custom.'")
    lower, upper = params.get("percent"), params.get("upto")
    if isinstance(lower, int) and isinstance(upper, int) and upper and upper < lower:
        errors.append("upto must not be below percent")
    low, high = params.get("min_days"), params.get("max_days")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.append("min_days must not exceed max_days")
    return errors
