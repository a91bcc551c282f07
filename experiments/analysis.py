"""Intention-to-treat analysis of an experiment: one SQL statement for the counts, then
``experiments.stats`` for the figures.

Everyone assigned counts in the arm they were assigned to, from the moment of assignment to
the end of their window (``window_ends_at``), whether or not a message reached them:

- conversion: an order of the card's target product (any order if none) in the window;
- revenue: the net revenue (after refunds) of their orders in the window, 0 for most;
- guardrails: an unsubscribe (any consent withdrawal), an order in the window with a refund,
  a spam complaint on a message sent to them in the window.

The holdout (no arm) is reported like an arm. Each variant is compared with the control arm,
and every arm with the holdout (incremental lift). Results are broken down by the LPS band the
learner had when assigned.

One correction for the whole card: the decision comparisons (each variant against control,
or each arm against the holdout when there is no control) are counted once, by
``decision_comparisons``, and both the card's sample size and every interval and p-value here
use alpha / that count (Bonferroni). Guardrails are tested at the card's alpha, uncorrected
(harm is flagged sooner). The split is checked phase by phase, each against the
plan in force when its learners were assigned (``split_check``).

The design the figures are read by (comparisons, testing, planned sample) lives in
``design``; the global holdout (``holdout``) and lift over time (``lift``) have their own
modules and stay importable from here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import connection
from django.utils import timezone

from expansion.commerce.models import Order, OrderLine
from learners.models import ConsentChange

from .assignment import plan_for, plan_shares
from .design import (
    HOLDOUT,
    decision_comparisons,
    group_key,
    is_sequential,
    planned_sample,
)
from .holdout import global_holdout_results
from .lift import cumulative_lift
from .models import Assignment, Experiment, Guardrail, Metric, Phase, Status
from .split_check import split_check
from .stats import Comparison, Counts, compare, wilson

__all__ = [
    "GUARDRAIL_COLUMNS",
    "ArmResult",
    "cumulative_lift",
    "experiment_results",
    "global_holdout_results",
]

# Where each guardrail's event count sits in a row of the counts query.
GUARDRAIL_COLUMNS = ((4, Guardrail.UNSUBSCRIBE), (5, Guardrail.REFUND), (6, Guardrail.COMPLAINT))


def _counts_sql(target_product_id: int | None) -> tuple[str, list[Any]]:
    product = " AND l.product_id = %s" if target_product_id else ""
    params: list[Any] = [target_product_id] if target_product_id else []
    window = "o.placed_at >= a.assigned_at AND o.placed_at < a.window_ends_at"
    orders = f"{Order._meta.db_table} o JOIN {OrderLine._meta.db_table} l ON l.order_id = o.id"
    # Complaints are campaigns' send events: a layer above, so its models are looked up by
    # name (the app registry), never imported.
    send = apps.get_model("campaigns", "Send")._meta.db_table
    send_event = apps.get_model("campaigns", "SendEvent")._meta.db_table
    # The phase: the last one started at or before the assignment (the first takes earlier
    # ones); phase_unique_number's index serves the lookup.
    sql = f"""
        SELECT x.arm_id, x.band, COUNT(*) AS n, SUM(x.converted) AS conversions,
          SUM(x.revenue) AS revenue, SUM(x.revenue * x.revenue) AS revenue_sq,
          SUM(x.unsubscribed) AS unsubscribe, SUM(x.refunded) AS refund,
          SUM(x.complained) AS complaint, x.phase
        FROM (
          SELECT a.arm_id, a.band,
            COALESCE((
              SELECT MAX(p.number) FROM {Phase._meta.db_table} p
              WHERE p.experiment_id = a.experiment_id AND p.started_at <= a.assigned_at
            ), 1) AS phase,
            CASE WHEN EXISTS (
              SELECT 1 FROM {orders}
              WHERE o.learner_id = a.learner_id AND {window}{product}
            ) THEN 1 ELSE 0 END AS converted,
            COALESCE((
              SELECT SUM(l.quantity * l.unit_price - l.refunded_amount)
              FROM {orders}
              WHERE o.learner_id = a.learner_id AND {window}
            ), 0) AS revenue,
            CASE WHEN EXISTS (
              SELECT 1 FROM {ConsentChange._meta.db_table} c
              WHERE c.learner_id = a.learner_id AND c.subscribed = %s
                AND c.changed_at >= a.assigned_at AND c.changed_at < a.window_ends_at
            ) THEN 1 ELSE 0 END AS unsubscribed,
            CASE WHEN EXISTS (
              SELECT 1 FROM {orders}
              WHERE o.learner_id = a.learner_id AND {window} AND l.refunded_amount > 0
            ) THEN 1 ELSE 0 END AS refunded,
            CASE WHEN EXISTS (
              SELECT 1 FROM {send_event} e JOIN {send} s ON s.id = e.send_id
              WHERE s.learner_id = a.learner_id AND e.kind = 'complained'
                AND e.at >= a.assigned_at AND e.at < a.window_ends_at
            ) THEN 1 ELSE 0 END AS complained
          FROM {Assignment._meta.db_table} a
          WHERE a.experiment_id = %s
        ) x
        GROUP BY x.phase, x.arm_id, x.band
    """
    return sql, [*params, False]


@dataclass
class ArmResult:
    key: str  # arm id as text, or "holdout"
    name: str
    is_control: bool
    is_active: bool
    weight: float
    counts: Counts
    rate_ci: tuple[float, float] | None
    guardrails: dict[str, dict[str, Any]] = field(default_factory=dict)
    vs_control: dict[str, Any] | None = None
    vs_holdout: dict[str, Any] | None = None
    by_band: dict[str, dict[str, Any]] = field(default_factory=dict)


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def experiment_results(*, experiment: Experiment, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the results page and the API, as plain data."""
    now = now or timezone.now()
    alpha = float(experiment.alpha)
    comparisons = decision_comparisons(experiment)
    alpha_each = comparisons.alpha_each
    sequential = is_sequential(experiment)
    tuning = float(experiment.sequential_tuning) if sequential else None
    sql, params = _counts_sql(experiment.target_product_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, experiment.pk])
        rows = cursor.fetchall()
    arms = {str(a.pk): a for a in experiment.arms.all()}
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0, 0])
    bands: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0, 0])
    )
    by_phase: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for arm_id, band, n, conv, revenue, revenue_sq, unsub, refund, complaint, phase in rows:
        key = group_key(arm_id)
        values = [n, conv, float(revenue or 0), float(revenue_sq or 0), unsub, refund, complaint]
        for target in (totals[key], bands[key][band or "unscored"]):
            for i, v in enumerate(values):
                target[i] += v
        by_phase[int(phase)][key] += int(n)
    current = plan_shares(plan_for(experiment))
    holdout_weight = float(experiment.holdout_percent)
    results: dict[str, ArmResult] = {}
    order = [*sorted(arms, key=lambda k: (not arms[k].is_control, int(k))), HOLDOUT]
    for key in order:
        t = totals.get(key, [0, 0, 0.0, 0.0, 0, 0, 0])
        counts = Counts(int(t[0]), int(t[1]), t[2], t[3])
        arm = arms.get(key)
        share = current.get(int(key) if arm else None, 0.0)
        results[key] = ArmResult(
            key=key,
            name=arm.name if arm else "Holdout (no offer)",
            is_control=bool(arm and arm.is_control),
            is_active=bool(arm.is_active) if arm else True,
            weight=round(share * 100, 4),
            counts=counts,
            rate_ci=wilson(counts.conversions, counts.n, alpha_each),
        )
        for index, guardrail in GUARDRAIL_COLUMNS:
            if guardrail in experiment.guardrails or not experiment.guardrails:
                results[key].guardrails[guardrail] = {
                    "events": int(t[index]),
                    "rate": _rate(int(t[index]), int(t[0])),
                }
        for band, b in sorted(bands.get(key, {}).items()):
            results[key].by_band[band] = {
                "n": int(b[0]),
                "conversions": int(b[1]),
                "rate": _rate(int(b[1]), int(b[0])),
                "revenue_per_learner": b[2] / b[0] if b[0] else None,
            }
    if HOLDOUT in results and results[HOLDOUT].counts.n == 0 and holdout_weight == 0:
        del results[HOLDOUT]
    control = next((r for r in results.values() if r.is_control), None)
    holdout = results.get(HOLDOUT)
    metric = experiment.primary_metric or Metric.CONVERSION
    for result in results.values():
        if control is not None and result is not control and result.key != HOLDOUT:
            result.vs_control = _comparison(
                control, result, alpha_each, alpha, bands, tuning, metric
            )
        if holdout is not None and result is not holdout and holdout.counts.n:
            result.vs_holdout = _comparison(
                holdout, result, alpha_each, alpha, bands, tuning, metric
            )
    names = {key: r.name for key, r in results.items()} | {
        HOLDOUT: "Holdout (no offer)",
        **{k: a.name for k, a in arms.items()},
    }
    horizon = planned_sample(experiment=experiment, now=now, comparisons=comparisons)
    return {
        "experiment": experiment.name,
        "status": experiment.status,
        "primary_metric": experiment.primary_metric,
        "alpha": alpha,
        "correction": {
            "method": "bonferroni",
            "comparisons": comparisons.count,
            "baseline": comparisons.baseline,
            "alpha_per_comparison": alpha_each,
            "confidence_percent": round(100 * (1 - alpha_each), 4),
            "text": comparisons.text,
            "guardrails_alpha": alpha,
        },
        "testing": {
            "sequential": sequential,
            "tuning": int(experiment.sequential_tuning) if sequential else None,
            "text": _testing_text(experiment, sequential),
        },
        "assigned": sum(r.counts.n for r in results.values()),
        "windows_still_open": experiment.assignments.filter(window_ends_at__gt=now).count(),
        "sample_size_per_arm": experiment.sample_size_per_arm,
        "sample_size_reached": horizon["reached"],
        "horizon": horizon,
        "sample_ratio_mismatch": split_check(experiment=experiment, by_phase=by_phase, names=names),
        "peeking_warning": horizon["warning"] if experiment.status == Status.RUNNING else "",
        "arms": [_arm_dict(r) for r in results.values()],
        "generated_at": now.isoformat(),
    }


def _testing_text(experiment: Experiment, sequential: bool) -> str:
    if sequential:
        return (
            "Sequential testing (always-valid p-values and confidence sequences, GrowthBook's "
            f"normal mixture, tuned for {experiment.sequential_tuning:,} learners per "
            "comparison): valid however often the results are looked at; decide once the "
            f"interval excludes zero and the card has run {experiment.min_duration_days} days."
        )
    return (
        "Fixed-horizon test: the p-values and intervals are valid once, at the planned sample "
        "size with its conversion windows closed."
    )


def _primary(c: Comparison, metric: str, sequential: bool, alpha_each: float) -> dict[str, Any]:
    """The figure a decision reads: the primary metric's difference, interval and p-value,
    always-valid on a sequential card, fixed-horizon otherwise, at the corrected alpha."""
    if metric == Metric.REVENUE:
        difference = c.revenue_difference
        ci = c.revenue_sequential_ci if sequential else c.revenue_ci
        p = c.revenue_sequential_p_value if sequential else c.revenue_p_value
        method = "Welch's t-test on revenue per learner"
    else:
        difference = c.absolute_lift
        ci = c.sequential_ci if sequential else c.absolute_ci
        p = c.sequential_p_value if sequential else c.p_value
        method = "two-proportion z-test, Newcomb's interval"
    if sequential:
        method = "sequential: normal-mixture confidence sequence (always valid)"
    return {
        "metric": metric,
        "difference": difference,
        "ci": ci,
        "p_value": p,
        "alpha": alpha_each,
        "significant": bool(p is not None and p < alpha_each),
        "method": method,
    }


def _comparison(
    base: ArmResult,
    arm: ArmResult,
    alpha_each: float,
    alpha: float,
    bands: dict,
    tuning: float | None,
    metric: str,
) -> dict[str, Any]:
    c = compare(base.counts, arm.counts, alpha_each, sequential_tuning=tuning)
    result = asdict(c)
    result["primary"] = _primary(c, metric, tuning is not None, alpha_each)
    guardrails = {}
    for name, counted in arm.guardrails.items():
        g = compare(
            Counts(base.counts.n, base.guardrails[name]["events"]),
            Counts(arm.counts.n, counted["events"]),
            alpha,
            sequential_tuning=tuning,
        )
        p = g.sequential_p_value if tuning is not None else g.p_value
        guardrails[name] = {
            "difference": g.absolute_lift,
            "ci": g.sequential_ci if tuning is not None else g.absolute_ci,
            "p_value": p,
            "worse": bool(p is not None and p < alpha and (g.absolute_lift or 0) > 0),
        }
    result["guardrails"] = guardrails
    by_band = {}
    for band in sorted(set(bands.get(base.key, {})) | set(bands.get(arm.key, {}))):
        b0 = bands.get(base.key, {}).get(band, [0, 0])
        b1 = bands.get(arm.key, {}).get(band, [0, 0])
        cb = compare(Counts(int(b0[0]), int(b0[1])), Counts(int(b1[0]), int(b1[1])), alpha_each)
        by_band[band] = {"absolute_lift": cb.absolute_lift, "p_value": cb.p_value}
    result["by_band"] = by_band
    return result


def _arm_dict(r: ArmResult) -> dict[str, Any]:
    c = r.counts
    return {
        "key": r.key,
        "name": r.name,
        "is_control": r.is_control,
        "is_active": r.is_active,
        "planned_share": r.weight,
        "n": c.n,
        "conversions": c.conversions,
        "rate": c.rate,
        "rate_ci": r.rate_ci,
        "revenue": round(c.revenue, 2),
        "revenue_per_learner": c.revenue_per_learner,
        "guardrails": r.guardrails,
        "vs_control": r.vs_control,
        "vs_holdout": r.vs_holdout,
        "by_band": r.by_band,
    }
