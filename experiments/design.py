"""The design a card's results are read by: how many decision comparisons share its alpha
(for the sample size and the analysis alike), fixed horizon or sequential, and where a fixed
horizon's planned sample stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from .models import Arm, Assignment, Experiment, Testing
from .stats import bonferroni

HOLDOUT = "holdout"


def group_key(arm_id: int | None) -> str:
    """The results' key for a group: the arm id as text, or "holdout"."""
    return str(arm_id) if arm_id is not None else HOLDOUT


def is_sequential(experiment: Experiment) -> bool:
    """Sequential unless the card asks for a fixed horizon, or (automatic) plans one with a
    sample size."""
    if experiment.testing == Testing.AUTO:
        return not experiment.sample_size_per_arm
    return experiment.testing == Testing.SEQUENTIAL


@dataclass(frozen=True)
class Comparisons:
    """The comparisons a decision rests on, counted once for the sample size and the analysis."""

    baseline: str  # "control" or "holdout"
    arms: list[Arm]  # compared with the baseline
    alpha: float  # the card's, for all of them together

    @property
    def count(self) -> int:
        return max(len(self.arms), 1)

    @property
    def alpha_each(self) -> float:
        return bonferroni(self.alpha, self.count)

    @property
    def text(self) -> str:
        against = "control" if self.baseline == "control" else "the holdout"
        each = "each variant" if self.baseline == "control" else "each arm"
        plural = "comparison" if self.count == 1 else "comparisons"
        level = f"α = {self.alpha:g}"
        if self.count > 1:
            level = f"α = {self.alpha:g} / {self.count} = {self.alpha_each:.4g} (Bonferroni)"
        return f"{self.count} {plural} ({each} against {against}), each at {level}"


def decision_comparisons(experiment: Experiment) -> Comparisons:
    """Each variant against the control arm; without a control (or with only a control),
    each arm against the holdout. Every arm on the card counts, retired ones too: the
    correction is fixed when the card is planned, not loosened when an arm drops out."""
    arms = list(experiment.arms.all()) if experiment.pk else []
    variants = [a for a in arms if not a.is_control]
    alpha = float(experiment.alpha)
    if variants and len(variants) < len(arms):
        return Comparisons("control", variants, alpha)
    return Comparisons(HOLDOUT, arms, alpha)


def planned_sample(
    *, experiment: Experiment, now: datetime, comparisons: Comparisons | None = None
) -> dict[str, Any]:
    """Where the card stands against its planned sample: for each group a decision compares
    (the baseline and the compared arms still active), how many are assigned and when the
    planned number's conversion windows close. One statement (a window function).

    ``reached``: every group has its planned learners and their windows have closed — the
    fixed horizon, before which a fixed-horizon result is not to be acted on.
    """
    comparisons = comparisons or decision_comparisons(experiment)
    planned = experiment.sample_size_per_arm
    sequential = is_sequential(experiment)
    arms = {str(a.pk): a for a in experiment.arms.all()}
    if comparisons.baseline == "control":
        control = next(k for k, a in arms.items() if a.is_control)
        keys = [control] + [str(a.pk) for a in comparisons.arms if a.is_active]
    else:
        keys = [HOLDOUT] + [str(a.pk) for a in comparisons.arms if a.is_active]
    counts: dict[str, tuple[int, datetime | None, datetime | None, datetime | None]] = {}
    if planned:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT arm_id, COUNT(*), MIN(assigned_at),
                  MAX(CASE WHEN position = %s THEN assigned_at END),
                  MAX(CASE WHEN position = %s THEN window_ends_at END)
                FROM (
                  SELECT arm_id, assigned_at, window_ends_at, ROW_NUMBER() OVER (
                    PARTITION BY arm_id ORDER BY assigned_at, id
                  ) AS position
                  FROM {Assignment._meta.db_table} WHERE experiment_id = %s
                ) x
                GROUP BY arm_id
                """,
                [planned, planned, experiment.pk],
            )
            for arm_id, n, first, nth, closes in cursor.fetchall():
                counts[group_key(arm_id)] = (int(n), first, nth, closes)
    groups = []
    for key in keys:
        n, first, nth, closes = counts.get(key, (0, None, None, None))
        projected = None
        if planned and closes is None and n and first is not None:
            # At the pace so far: when the planned learner arrives, plus their window.
            pace = n / max((now - first).total_seconds(), 3600.0)
            arrives = now + timedelta(seconds=(planned - n) / pace)
            projected = arrives + timedelta(days=experiment.window_days)
        groups.append(
            {
                "key": key,
                "name": arms[key].name if key in arms else "Holdout (no offer)",
                "n": n,
                "planned_assigned_at": nth,
                "complete_at": closes,
                "projected_complete_at": projected,
            }
        )
    complete = [g["complete_at"] for g in groups]
    reached_at = max(complete) if planned and complete and None not in complete else None
    reached = reached_at is not None and reached_at <= now
    smallest = min(groups, key=lambda g: g["n"]) if groups else None
    projections = [g["projected_complete_at"] for g in groups if g["projected_complete_at"]]
    expected_at = reached_at or (max(projections) if projections else None)
    return {
        "sequential": sequential,
        "planned_per_group": planned,
        "groups": groups,
        "reached": reached,
        "reached_at": reached_at if reached else None,
        "expected_at": None if reached else expected_at,
        "warning": _horizon_warning(
            experiment, now, sequential, planned, reached, reached_at, expected_at, smallest
        ),
    }


def _horizon_warning(
    experiment: Experiment,
    now: datetime,
    sequential: bool,
    planned: int | None,
    reached: bool,
    reached_at: datetime | None,
    expected_at: datetime | None,
    smallest: dict[str, Any] | None,
) -> str:
    if sequential or not planned:
        return ""
    if reached and reached_at is not None:
        return (
            f"Fixed-horizon test: the planned sample was reached on {reached_at:%Y-%m-%d} "
            f"({planned:,} learners in every group, their {experiment.window_days}-day windows "
            "closed). Decide on these figures."
        )
    where = ""
    if smallest is not None:
        where = f"; smallest group: {smallest['name']}, {smallest['n']:,} assigned"
    when = ""
    if expected_at is not None and expected_at - now > timedelta(days=365):
        when = "; not within a year at the current pace"
    elif expected_at is not None:
        when = f"; expected complete around {expected_at:%Y-%m-%d} at the current pace"
    return (
        f"Fixed-horizon test, planned sample not reached ({planned:,} learners per group with "
        f"their {experiment.window_days}-day windows closed{where}{when}). Results before it "
        "are not to be acted on: the p-values and intervals are valid once, at the planned "
        "sample; checking them repeatedly and stopping at the first 'significant' look "
        "inflates false positives."
    )
