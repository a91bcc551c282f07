"""The demo's running experiment card: the next-course offer, 30 % off against a bonus."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from expansion.commerce.models import Incentive, Offer
from experiments.assignment import assign
from experiments.models import Arm, Experiment
from learners.models import Learner


def demo_experiment(*, seed: int, now: datetime) -> None:
    """A running experiment card on the next-course offer: 30 % off against the bonus only,
    with a 10 % holdout; the demo learners assigned over the last three weeks."""
    discount = Offer.objects.get(name="Next course in the path")
    bonus = Offer.objects.create(
        name="Next course in the path (bonus only)",
        kind=discount.kind,
        outcome_gap=discount.outcome_gap,
        product=discount.product,
        incentive=Incentive.BONUS,
        bonus="The SQL cheat-sheet pack",
        cta_url=discount.cta_url,
        positioning=discount.positioning,
        moments=discount.moments,
    )
    experiment = Experiment.objects.create(
        name="Next course: 30% off or a bonus?",
        hypothesis="The next course, to learners who finished the one before, at completion, "
        "sells as well with a bonus as with 30% off — so the discount gives margin away.",
        variable="Incentive: 30% discount against a value-add bonus",
        primary_metric="revenue",
        target_product=discount.product,
        guardrails=["unsubscribe", "refund", "complaint"],
        holdout_definition="10% of completers get no offer, to measure what sells anyway.",
        holdout_percent=10,
        baseline_rate=Decimal("0.05"),
        minimum_detectable_effect=Decimal("0.03"),
        sample_size_per_arm=900,
        window_days=30,
        decision_rule="Roll out the bonus if its revenue per learner is not worse at p < 0.05 "
        "and no guardrail is worse; otherwise keep the discount.",
        status="running",
        started_at=now - timedelta(days=21),
        salt=f"demo-{seed}",
    )
    Arm.objects.bulk_create(
        [
            Arm(experiment=experiment, name="30% off", is_control=True, offer=discount),
            Arm(experiment=experiment, name="Bonus only", offer=bonus),
        ]
    )
    # Learners arrive over the three weeks (a cohort a day), so the lift has a history.
    ids = list(Learner.objects.order_by("id").values_list("id", flat=True))
    for day in range(21):
        assign(
            experiment=experiment,
            learners=Learner.objects.filter(id__in=ids[day::21]),
            now=now - timedelta(days=21 - day),
        )
