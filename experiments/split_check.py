"""The sample-ratio check of an experiment, phase by phase: each phase's assignments against
the plan in force when its learners were assigned (``Phase``), so a re-weighted card is not
flagged for the plan it had before."""

from __future__ import annotations

from typing import Any

from .assignment import phase_plan, plan_shares
from .design import HOLDOUT, group_key
from .models import Experiment, Phase
from .stats import sample_ratio_mismatch_phased


def _phases(experiment: Experiment) -> dict[int, Phase]:
    phases = {p.number: p for p in experiment.phases.all()}
    if not phases:
        # A card started before phases were recorded (or built directly): its plan as it is.
        weights = {
            str(a): w for a, w in experiment.arms.filter(is_active=True).values_list("id", "weight")
        }
        phases[1] = Phase(
            experiment=experiment,
            number=1,
            started_at=experiment.started_at or experiment.created_at,
            holdout_percent=experiment.holdout_percent,
            weights=weights,
        )
    return phases


def split_check(
    *, experiment: Experiment, by_phase: dict[int, dict[str, int]], names: dict[str, str]
) -> dict[str, Any]:
    """Each phase's assignments against that phase's plan (see ``Phase``): its groups'
    planned shares, observed and expected counts and chi-square test, and the card's verdict
    (``flagged``, from the worst phase). ``by_phase``: phase number → group key → learners
    assigned; ``names``: group key → the name shown."""
    phases = _phases(experiment)
    numbers = sorted(set(phases) | set(by_phase))
    inputs, groups = [], []
    for number in numbers:
        phase = phases.get(number)
        shares = (
            {group_key(arm): share for arm, share in plan_shares(phase_plan(phase)).items()}
            if phase is not None
            else {}
        )
        observed = by_phase.get(number, {})
        keys = [HOLDOUT] + sorted((set(shares) | set(observed)) - {HOLDOUT}, key=lambda k: int(k))
        keys = [k for k in keys if shares.get(k, 0) > 0 or observed.get(k, 0) > 0]
        inputs.append(([observed.get(k, 0) for k in keys], [shares.get(k, 0.0) for k in keys]))
        groups.append(keys)
    check = sample_ratio_mismatch_phased(inputs)
    listed = []
    for number, keys, (_, shares_list), split in zip(
        numbers, groups, inputs, check.phases, strict=True
    ):
        phase = phases.get(number)
        listed.append(
            {
                "number": number,
                "started_at": phase.started_at if phase is not None else None,
                "ended_at": phase.ended_at if phase is not None else None,
                "groups": [
                    {
                        "key": key,
                        "name": names.get(key, f"arm {key}"),
                        "planned_share": share,
                        "observed": observed,
                        "expected": expected,
                    }
                    for key, share, observed, expected in zip(
                        keys, shares_list, split.observed, split.expected, strict=True
                    )
                ],
                "chi2": split.chi2,
                "dof": split.dof,
                "p_value": split.p_value,
            }
        )
    return {
        "p_value": check.p_value,
        "flagged": check.flagged,
        "chi2": check.chi2,
        "dof": check.dof,
        "worst_phase": numbers[check.worst_phase] if check.worst_phase is not None else None,
        "phases": listed,
    }
