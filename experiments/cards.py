"""The card's life: draft → running → decided, with the checks seed 001 asks for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from expansion.models import Offer

from .models import Arm, Decision, Experiment, Status
from .stats import sample_size


class CardError(Exception):
    """The card cannot make this move; the message says what is missing."""


def card_missing(experiment: Experiment) -> list[str]:
    """What a draft still needs before it can start."""
    missing = []
    if not experiment.hypothesis.strip():
        missing.append("a hypothesis (this offer, to this segment, at this moment, will …)")
    if not experiment.primary_metric:
        missing.append("a primary metric")
    if not experiment.sample_size_per_arm:
        missing.append("the required sample size per arm")
    arms = list(experiment.arms.filter(is_active=True)) if experiment.pk else []
    if not arms:
        missing.append("at least one arm")
    elif not any(a.is_control for a in arms) and experiment.holdout_percent <= 0:
        missing.append("a control arm or a holdout to compare with")
    return missing


def card_sample_size(experiment: Experiment) -> int | None:
    """The sample size per arm from the card's baseline, MDE, alpha, power and arm count."""
    if experiment.baseline_rate is None or not experiment.minimum_detectable_effect:
        return None
    arms = experiment.arms.filter(is_active=True).count() if experiment.pk else 0
    groups = arms + (1 if experiment.holdout_percent > 0 else 0)
    return sample_size(
        baseline=float(experiment.baseline_rate),
        mde=float(experiment.minimum_detectable_effect),
        alpha=float(experiment.alpha),
        power=float(experiment.power),
        arms=max(groups, 2),
    )


@transaction.atomic
def experiment_start(*, experiment: Experiment, now: datetime | None = None) -> Experiment:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Status.DRAFT:
        raise CardError(f"only a draft can start; this one is {experiment.status}")
    missing = card_missing(experiment)
    if missing:
        raise CardError("cannot start without " + "; ".join(missing))
    experiment.status = Status.RUNNING
    experiment.started_at = now or timezone.now()
    experiment.save(update_fields=["status", "started_at"])
    return experiment


def arm_retire(*, arm: Arm) -> None:
    """Stop assigning to an arm and mark its offer inactive (unless another live arm uses it)."""
    Arm.objects.filter(pk=arm.pk).update(is_active=False)
    if arm.offer_id is not None:
        still_used = Arm.objects.filter(offer_id=arm.offer_id, is_active=True).exists()
        if not still_used:
            Offer.objects.filter(pk=arm.offer_id).update(is_active=False)


@transaction.atomic
def experiment_decide(
    *,
    experiment: Experiment,
    decision: str,
    reason: str,
    user: Any,
    winning_arm: Arm | None = None,
    result: str = "",
    now: datetime | None = None,
) -> Experiment:
    """Record who decided what and why; retire the arms that lost."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Status.RUNNING:
        raise CardError(
            f"only a running experiment can be decided; this one is {experiment.status}"
        )
    if not reason.strip():
        raise CardError("say why: the decision needs a reason")
    arms = list(experiment.arms.all())
    if decision == Decision.ROLL_OUT:
        if winning_arm is None or winning_arm.experiment_id != experiment.pk:
            raise CardError("rolling out needs the winning arm of this experiment")
        losers = [a for a in arms if a.pk != winning_arm.pk]
    elif decision == Decision.KEEP_CONTROL:
        losers = [a for a in arms if not a.is_control]
    elif decision == Decision.INCONCLUSIVE:
        losers = []
    else:
        raise CardError(f"unknown decision {decision!r}")
    for arm in losers:
        arm_retire(arm=arm)
    experiment.status = Status.DECIDED
    experiment.decision = decision
    experiment.winning_arm = winning_arm if decision == Decision.ROLL_OUT else None
    experiment.decision_reason = reason
    experiment.result = result or experiment.result
    experiment.decided_by = user
    experiment.decided_at = experiment.ended_at = now or timezone.now()
    experiment.save()
    return experiment
