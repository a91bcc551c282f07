"""Lift over time: per day of assignment, each arm's cumulative conversion rate and its lift
over the control (the results page's chart)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDate

from expansion.commerce.models import OrderLine

from .design import decision_comparisons, group_key, is_sequential
from .models import Experiment
from .stats import Counts, compare


def cumulative_lift(*, experiment: Experiment) -> list[dict[str, Any]]:
    """Per day of assignment, each arm's cumulative conversion rate and its lift over the
    control (for the chart of lift over time), each with its interval (``interval``, at the
    card's corrected alpha): on a sequential card the always-valid one, which may be read on
    any day; on a fixed-horizon card the day's ordinary interval, for looking at, not for
    deciding (valid once, at the planned sample)."""
    lines = OrderLine.objects.filter(
        order__learner=OuterRef("learner"),
        order__placed_at__gte=OuterRef("assigned_at"),
        order__placed_at__lt=OuterRef("window_ends_at"),
    )
    if experiment.target_product_id:
        lines = lines.filter(product_id=experiment.target_product_id)
    rows = (
        experiment.assignments.annotate(day=TruncDate("assigned_at"), converted=Exists(lines))
        .values("day", "arm_id")
        .annotate(n=Count("id"), k=Count("id", filter=Q(converted=True)))
        .order_by("day")
    )
    control = experiment.arms.filter(is_control=True).values_list("id", flat=True).first()
    sequential = is_sequential(experiment)
    alpha_each = decision_comparisons(experiment).alpha_each
    totals: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    days: list[dict[str, Any]] = []
    for row in rows:
        if days and days[-1]["day"] == row["day"]:
            point = days[-1]
        else:
            point = {"day": row["day"]}
            days.append(point)
        totals[row["arm_id"]][0] += row["n"]
        totals[row["arm_id"]][1] += row["k"]
        point["rates"] = {group_key(arm): (k / n if n else None) for arm, (n, k) in totals.items()}
        point["counts"] = {group_key(arm): (n, k) for arm, (n, k) in totals.items()}
    for point in days:
        base = point["rates"].get(str(control)) if control else None
        point["lift"] = {
            arm: (rate - base if rate is not None and base is not None else None)
            for arm, rate in point["rates"].items()
            if arm != str(control)
        }
        if control:
            n0, k0 = point["counts"].get(str(control), (0, 0))
            intervals = {}
            for arm in point["lift"]:
                comparison = compare(
                    Counts(n0, k0),
                    Counts(*point["counts"][arm]),
                    alpha_each,
                    sequential_tuning=float(experiment.sequential_tuning) if sequential else None,
                )
                intervals[arm] = comparison.sequential_ci if sequential else comparison.absolute_ci
            point["interval"] = intervals
        del point["counts"]
    return days
