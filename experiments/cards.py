"""The card's life: draft → running → decided, with the checks seed 001 asks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from expansion.commerce.models import Offer

from .assignment import phase_record
from .design import decision_comparisons, is_sequential, planned_sample
from .models import Arm, Decision, Experiment, Status, Testing
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
    if not experiment.sample_size_per_arm and experiment.testing == Testing.FIXED:
        missing.append("the required sample size per arm (a fixed horizon needs one)")
    arms = list(experiment.arms.filter(is_active=True)) if experiment.pk else []
    if not arms:
        missing.append("at least one arm")
    elif experiment.holdout_percent <= 0 and (not any(a.is_control for a in arms) or len(arms) < 2):
        missing.append("a control arm and a variant, or a holdout, to compare with")
    return missing


def card_sample_size(experiment: Experiment) -> int | None:
    """The sample size per group from the card's baseline, MDE, alpha and power, each
    decision comparison at alpha / their number — the correction the analysis applies."""
    if experiment.baseline_rate is None or not experiment.minimum_detectable_effect:
        return None
    return sample_size(
        baseline=float(experiment.baseline_rate),
        mde=float(experiment.minimum_detectable_effect),
        alpha=float(experiment.alpha),
        power=float(experiment.power),
        comparisons=decision_comparisons(experiment).count,
    )


@transaction.atomic
def experiment_start(*, experiment: Experiment, now: datetime | None = None) -> Experiment:
    """Start a complete draft; its plan (holdout, arm weights) is recorded as phase 1."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Status.DRAFT:
        raise CardError(f"only a draft can start; this one is {experiment.status}")
    missing = card_missing(experiment)
    if missing:
        raise CardError("cannot start without " + "; ".join(missing))
    experiment.status = Status.RUNNING
    experiment.started_at = now or timezone.now()
    experiment.save(update_fields=["status", "started_at"])
    phase_record(experiment=experiment, now=experiment.started_at)
    return experiment


def _retire(arm: Arm) -> None:
    Arm.objects.filter(pk=arm.pk).update(is_active=False)
    if arm.offer_id is not None:
        still_used = Arm.objects.filter(offer_id=arm.offer_id, is_active=True).exists()
        if not still_used:
            Offer.objects.filter(pk=arm.offer_id).update(is_active=False)


def arm_retire(*, arm: Arm, now: datetime | None = None) -> None:
    """Stop assigning to an arm and mark its offer inactive (unless another live arm uses it).
    On a running card the new plan starts a new phase."""
    _retire(arm)
    phase_record(experiment=Experiment.objects.get(pk=arm.experiment_id), now=now)


def decision_blockers(*, experiment: Experiment, now: datetime | None = None) -> list[str]:
    """What the card still requires before a decision (empty: it may be decided).

    The minimum duration always; on a fixed-horizon card also the planned sample with its
    conversion windows closed. A sequential card's results are valid at any look, so its
    sample size is a budget, not a horizon.
    """
    now = now or timezone.now()
    blockers = []
    started = experiment.started_at
    if started is None:
        first = experiment.assignments.order_by("assigned_at").values("assigned_at").first()
        started = first["assigned_at"] if first else None
    if started is None:
        blockers.append("any assignment (the card has not run)")
    else:
        ran = now - started
        if ran < timedelta(days=experiment.min_duration_days):
            until = started + timedelta(days=experiment.min_duration_days)
            blockers.append(
                f"the minimum duration of {experiment.min_duration_days} days (running "
                f"{ran.days} days; until {until:%Y-%m-%d %H:%M})"
            )
    if not is_sequential(experiment) and experiment.sample_size_per_arm:
        horizon = planned_sample(experiment=experiment, now=now)
        if not horizon["reached"]:
            smallest = min(horizon["groups"], key=lambda g: g["n"], default=None)
            detail = (
                f"; smallest group {smallest['name']}: {smallest['n']:,} assigned"
                if smallest is not None
                else ""
            )
            blockers.append(
                f"the planned sample of {experiment.sample_size_per_arm:,} learners per group "
                f"with their {experiment.window_days}-day windows closed{detail}"
            )
    return blockers


@transaction.atomic
def experiment_decide(
    *,
    experiment: Experiment,
    decision: str,
    reason: str,
    user: Any,
    winning_arm: Arm | None = None,
    result: str = "",
    override_reason: str = "",
    now: datetime | None = None,
) -> Experiment:
    """Record who decided what and why; retire the arms that lost.

    Refused unless ``user`` is who the card names to sign off, and, before the minimum
    duration or (fixed horizon) the planned sample, unless ``override_reason`` says why;
    an override is stored with who, when, why and what was still missing.
    """
    now = now or timezone.now()
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Status.RUNNING:
        raise CardError(
            f"only a running experiment can be decided; this one is {experiment.status}"
        )
    if not reason.strip():
        raise CardError("say why: the decision needs a reason")
    if experiment.sign_off_by_id is None:
        raise CardError("the card names no one to sign the decision off: set 'Sign off by' first")
    if getattr(user, "pk", None) != experiment.sign_off_by_id:
        raise CardError(f"the decision is signed off by {experiment.sign_off_by}, not by {user}")
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
    blockers = decision_blockers(experiment=experiment, now=now)
    if blockers and not override_reason.strip():
        raise CardError(
            "too early to decide: the card still requires "
            + "; ".join(blockers)
            + ". To decide anyway, give the reason for overriding (it is recorded and shown)."
        )
    for arm in losers:
        _retire(arm)
    experiment.status = Status.DECIDED
    experiment.decision = decision
    experiment.winning_arm = winning_arm if decision == Decision.ROLL_OUT else None
    experiment.decision_reason = reason
    experiment.result = result or experiment.result
    experiment.decided_by = user
    experiment.decided_at = experiment.ended_at = now
    if blockers:
        experiment.override_reason = override_reason.strip()
        experiment.override_missing = "; ".join(blockers)
        experiment.overridden_by = user
        experiment.overridden_at = now
    experiment.save()
    experiment.phases.filter(ended_at__isnull=True).update(ended_at=now)
    return experiment


@dataclass(frozen=True)
class AppliedDecision:
    """What a decided card asks of the campaigns that use it.

    ``offer``: what to offer from now on instead of the arms (None with ``offer_nothing``
    False: the campaign's own offer). ``offer_nothing``: the baseline that won was the
    holdout (no offer), so the campaign should send nothing. ``retired_offer_ids``: offers the
    decision made inactive; never send them.
    """

    decision: str
    winning_arm: Arm | None
    offer: Offer | None
    offer_nothing: bool
    retired_offer_ids: frozenset[int]


def decision_applied(*, experiment: Experiment) -> AppliedDecision | None:
    """The decided card's outcome for the campaigns layer; None while it is undecided.

    Roll out: the winning arm's offer. Keep control: the control arm's offer (or, with no
    control arm, nothing: the holdout won). Inconclusive: no change (the campaign's own offer).
    Every experiment's assignment stops once decided, so holdout and losing learners get
    this outcome too.
    """
    if experiment.status != Status.DECIDED:
        return None
    arms = list(experiment.arms.select_related("offer"))
    winner: Arm | None = None
    nothing = False
    if experiment.decision == Decision.ROLL_OUT:
        winner = next((a for a in arms if a.pk == experiment.winning_arm_id), None)
    elif experiment.decision == Decision.KEEP_CONTROL:
        winner = next((a for a in arms if a.is_control), None)
        nothing = winner is None
    retired = frozenset(
        a.offer_id
        for a in arms
        if not a.is_active
        and a.offer_id is not None
        and a.offer is not None
        and not a.offer.is_active
    )
    return AppliedDecision(
        decision=experiment.decision,
        winning_arm=winner,
        offer=winner.offer if winner is not None else None,
        offer_nothing=nothing,
        retired_offer_ids=retired,
    )
