"""The global holdout: the share of learners no campaign reaches, against everyone else, over
the settings' comparison window — the whole program's incremental effect."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from expansion.commerce.models import Order, OrderLine
from learners.models import Learner

from .assignment import bucket_sql
from .models import ExperimentSettings
from .stats import Counts, compare


def global_holdout_results(*, now: datetime | None = None) -> dict[str, Any]:
    """The global holdout against everyone else over the settings' comparison window: share
    of learners who ordered, and revenue per learner (the whole program's incremental
    effect). One statement; the holdout is computed by the same bucket function as always."""
    now = now or timezone.now()
    settings = ExperimentSettings.load()
    start = now - timedelta(days=settings.comparison_window_days)
    limit = int(settings.global_holdout_percent * 100)
    stamp = connection.ops.adapt_datetimefield_value
    sql = f"""
        SELECT CASE WHEN {bucket_sql("l.id")} < %s THEN 1 ELSE 0 END AS held,
          COUNT(*), SUM(CASE WHEN r.revenue IS NOT NULL THEN 1 ELSE 0 END),
          SUM(COALESCE(r.revenue, 0)), SUM(COALESCE(r.revenue, 0) * COALESCE(r.revenue, 0))
        FROM {Learner._meta.db_table} l
        LEFT JOIN (
          SELECT o.learner_id, SUM(li.quantity * li.unit_price - li.refunded_amount) AS revenue
          FROM {Order._meta.db_table} o JOIN {OrderLine._meta.db_table} li ON li.order_id = o.id
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
