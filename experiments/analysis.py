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
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from .models import Experiment, ExperimentSettings, Guardrail, Status
from .stats import SRM_P, Counts, compare, sample_ratio_mismatch, wilson

HOLDOUT = "holdout"
# Where each guardrail's event count sits in a row of the counts query.
GUARDRAIL_COLUMNS = ((4, Guardrail.UNSUBSCRIBE), (5, Guardrail.REFUND), (6, Guardrail.COMPLAINT))
PEEKING_WARNING = (
    "Fixed-horizon test: the p-values and intervals are valid once, at the planned sample size. "
    "Checking them repeatedly and stopping at the first 'significant' look inflates false "
    "positives; decide at the sample size on the card."
)


def _counts_sql(target_product_id: int | None) -> tuple[str, list[Any]]:
    product = " AND l.product_id = %s" if target_product_id else ""
    params: list[Any] = [target_product_id] if target_product_id else []
    window = "o.placed_at >= a.assigned_at AND o.placed_at < a.window_ends_at"
    sql = f"""
        SELECT x.arm_id, x.band, COUNT(*) AS n, SUM(x.converted) AS conversions,
          SUM(x.revenue) AS revenue, SUM(x.revenue * x.revenue) AS revenue_sq,
          SUM(x.unsubscribed) AS unsubscribe, SUM(x.refunded) AS refund,
          SUM(x.complained) AS complaint
        FROM (
          SELECT a.arm_id, a.band,
            CASE WHEN EXISTS (
              SELECT 1 FROM expansion_order o JOIN expansion_orderline l ON l.order_id = o.id
              WHERE o.learner_id = a.learner_id AND {window}{product}
            ) THEN 1 ELSE 0 END AS converted,
            COALESCE((
              SELECT SUM(l.quantity * l.unit_price - l.refunded_amount)
              FROM expansion_order o JOIN expansion_orderline l ON l.order_id = o.id
              WHERE o.learner_id = a.learner_id AND {window}
            ), 0) AS revenue,
            CASE WHEN EXISTS (
              SELECT 1 FROM learners_consentchange c
              WHERE c.learner_id = a.learner_id AND c.subscribed = %s
                AND c.changed_at >= a.assigned_at AND c.changed_at < a.window_ends_at
            ) THEN 1 ELSE 0 END AS unsubscribed,
            CASE WHEN EXISTS (
              SELECT 1 FROM expansion_order o JOIN expansion_orderline l ON l.order_id = o.id
              WHERE o.learner_id = a.learner_id AND {window} AND l.refunded_amount > 0
            ) THEN 1 ELSE 0 END AS refunded,
            CASE WHEN EXISTS (
              SELECT 1 FROM campaigns_sendevent e JOIN campaigns_send s ON s.id = e.send_id
              WHERE s.learner_id = a.learner_id AND e.kind = 'complained'
                AND e.at >= a.assigned_at AND e.at < a.window_ends_at
            ) THEN 1 ELSE 0 END AS complained
          FROM experiments_assignment a
          WHERE a.experiment_id = %s
        ) x
        GROUP BY x.arm_id, x.band
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
    sql, params = _counts_sql(experiment.target_product_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, experiment.pk])
        rows = cursor.fetchall()
    arms = {str(a.pk): a for a in experiment.arms.all()}
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0, 0])
    bands: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0, 0])
    )
    for arm_id, band, n, conv, revenue, revenue_sq, unsub, refund, complaint in rows:
        key = str(arm_id) if arm_id is not None else HOLDOUT
        values = [n, conv, float(revenue or 0), float(revenue_sq or 0), unsub, refund, complaint]
        for target in (totals[key], bands[key][band or "unscored"]):
            for i, v in enumerate(values):
                target[i] += v
    holdout_weight = float(experiment.holdout_percent)
    active_weight = sum(a.weight for a in arms.values() if a.is_active)
    results: dict[str, ArmResult] = {}
    order = [*sorted(arms, key=lambda k: (not arms[k].is_control, int(k))), HOLDOUT]
    for key in order:
        t = totals.get(key, [0, 0, 0.0, 0.0, 0, 0, 0])
        counts = Counts(int(t[0]), int(t[1]), t[2], t[3])
        arm = arms.get(key)
        weight = (
            (100 - holdout_weight) * arm.weight / active_weight
            if arm and arm.is_active and active_weight
            else (holdout_weight if key == HOLDOUT else 0.0)
        )
        results[key] = ArmResult(
            key=key,
            name=arm.name if arm else "Holdout (no offer)",
            is_control=bool(arm and arm.is_control),
            is_active=bool(arm.is_active) if arm else True,
            weight=round(weight, 4),
            counts=counts,
            rate_ci=wilson(counts.conversions, counts.n, alpha),
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
    for result in results.values():
        if control is not None and result is not control and result.key != HOLDOUT:
            result.vs_control = _comparison(control, result, alpha, bands)
        if holdout is not None and result is not holdout and holdout.counts.n:
            result.vs_holdout = _comparison(holdout, result, alpha, bands)
    planned = [r for r in results.values() if r.weight > 0]
    srm_p = sample_ratio_mismatch([r.counts.n for r in planned], [r.weight for r in planned])
    assigned = sum(r.counts.n for r in results.values())
    open_windows = experiment.assignments.filter(window_ends_at__gt=now).count()
    per_arm = [r.counts.n for r in results.values() if r.key != HOLDOUT and r.is_active]
    return {
        "experiment": experiment.name,
        "status": experiment.status,
        "primary_metric": experiment.primary_metric,
        "alpha": alpha,
        "assigned": assigned,
        "windows_still_open": open_windows,
        "sample_size_per_arm": experiment.sample_size_per_arm,
        "sample_size_reached": bool(
            experiment.sample_size_per_arm
            and per_arm
            and min(per_arm) >= experiment.sample_size_per_arm
        ),
        "sample_ratio_mismatch": {
            "p_value": srm_p,
            "flagged": srm_p is not None and srm_p < SRM_P,
        },
        "peeking_warning": PEEKING_WARNING if experiment.status == Status.RUNNING else "",
        "arms": [_arm_dict(r) for r in results.values()],
        "generated_at": now.isoformat(),
    }


def _comparison(base: ArmResult, arm: ArmResult, alpha: float, bands: dict) -> dict[str, Any]:
    result = asdict(compare(base.counts, arm.counts, alpha))
    guardrails = {}
    for name, counted in arm.guardrails.items():
        g = compare(
            Counts(base.counts.n, base.guardrails[name]["events"]),
            Counts(arm.counts.n, counted["events"]),
            alpha,
        )
        guardrails[name] = {
            "difference": g.absolute_lift,
            "ci": g.absolute_ci,
            "p_value": g.p_value,
            "worse": bool(
                g.p_value is not None and g.p_value < alpha and (g.absolute_lift or 0) > 0
            ),
        }
    result["guardrails"] = guardrails
    by_band = {}
    for band in sorted(set(bands.get(base.key, {})) | set(bands.get(arm.key, {}))):
        b0 = bands.get(base.key, {}).get(band, [0, 0])
        b1 = bands.get(arm.key, {}).get(band, [0, 0])
        c = compare(Counts(int(b0[0]), int(b0[1])), Counts(int(b1[0]), int(b1[1])), alpha)
        by_band[band] = {"absolute_lift": c.absolute_lift, "p_value": c.p_value}
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


def global_holdout_results(*, now: datetime | None = None) -> dict[str, Any]:
    """The global holdout against everyone else over the settings' comparison window: share
    of learners who ordered, and revenue per learner (the whole program's incremental
    effect). One statement; the holdout is computed by the same bucket function as always."""
    from .assignment import bucket_sql

    now = now or timezone.now()
    settings = ExperimentSettings.load()
    start = now - timedelta(days=settings.comparison_window_days)
    limit = int(settings.global_holdout_percent * 100)
    stamp = connection.ops.adapt_datetimefield_value
    sql = f"""
        SELECT CASE WHEN {bucket_sql("l.id")} < %s THEN 1 ELSE 0 END AS held,
          COUNT(*), SUM(CASE WHEN r.revenue IS NOT NULL THEN 1 ELSE 0 END),
          SUM(COALESCE(r.revenue, 0)), SUM(COALESCE(r.revenue, 0) * COALESCE(r.revenue, 0))
        FROM learners_learner l
        LEFT JOIN (
          SELECT o.learner_id, SUM(li.quantity * li.unit_price - li.refunded_amount) AS revenue
          FROM expansion_order o JOIN expansion_orderline li ON li.order_id = o.id
          WHERE o.placed_at >= %s AND o.placed_at < %s
          GROUP BY o.learner_id
        ) r ON r.learner_id = l.id
        GROUP BY 1
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [settings.global_holdout_salt, limit, stamp(start), stamp(now)])
        rows = {
            held: Counts(int(n), int(k), float(rev or 0), float(sq or 0))
            for held, n, k, rev, sq in cursor.fetchall()
        }
    held = rows.get(1, Counts(0, 0))
    rest = rows.get(0, Counts(0, 0))
    comparison = compare(held, rest)
    return {
        "window_days": settings.comparison_window_days,
        "holdout_percent": float(settings.global_holdout_percent),
        "holdout": {
            "n": held.n,
            "buyers": held.conversions,
            "rate": held.rate,
            "revenue_per_learner": held.revenue_per_learner,
        },
        "everyone_else": {
            "n": rest.n,
            "buyers": rest.conversions,
            "rate": rest.rate,
            "revenue_per_learner": rest.revenue_per_learner,
        },
        "lift": asdict(comparison),
    }


def cumulative_lift(*, experiment: Experiment) -> list[dict[str, Any]]:
    """Per day of assignment, each arm's cumulative conversion rate and its lift over the
    control (for the chart of lift over time)."""
    from django.db.models import Count, Exists, OuterRef, Q
    from django.db.models.functions import TruncDate

    from expansion.models import OrderLine

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
        point["rates"] = {
            (str(arm) if arm else HOLDOUT): (k / n if n else None) for arm, (n, k) in totals.items()
        }
    for point in days:
        base = point["rates"].get(str(control)) if control else None
        point["lift"] = {
            arm: (rate - base if rate is not None and base is not None else None)
            for arm, rate in point["rates"].items()
            if arm != str(control)
        }
    return days
