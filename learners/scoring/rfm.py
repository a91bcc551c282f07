"""RFM (seed 001): recency, frequency and monetary value of a learner's orders, 1–5 each.

A score is the quintile of the learner's last order time, number of orders and net revenue
among every customer's (``rfm_thresholds``: the upper bounds of the first four quintiles,
recomputed on a full pass and reused by the others, so one learner's new order does not
reshuffle everyone's cells). The cell ``R-F-M`` is named by the first ``RfmSegment`` (by
priority) whose ranges hold it; learners without orders have no cell. The order totals are
the commerce app's facts (``learners.commerce``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from ..commerce import commerce
from ..models import RfmSegment, ScoringRun
from .scope import scope_expr
from .sql import execute


def order_totals(*, scoped: bool) -> None:
    """Per learner: last order, orders, net revenue — once, for RFM bounds and scores."""
    totals_sql, params = commerce().order_totals_sql(scope=scope_expr() if scoped else None)
    execute(f"CREATE TEMPORARY TABLE scoring_co AS SELECT t.* FROM ({totals_sql}) t", params)
    execute("ANALYZE scoring_co (learner_id)")


def has_bounds() -> bool:
    """Whether a full pass has recorded quintile bounds for later passes to reuse."""
    return ScoringRun.objects.filter(kind="full").exclude(rfm_thresholds={}).exists()


def rfm_thresholds(*, fresh: bool) -> dict[str, list]:
    """Upper bounds of the first four quintiles of last order time, orders and revenue.

    Recomputed over every customer on a full pass; an incremental pass reuses the bounds of
    the latest full pass, so one learner's new order does not reshuffle everyone's cells.
    """
    if not fresh:
        last = ScoringRun.objects.filter(kind="full").exclude(rfm_thresholds={}).first()
        if last is not None:
            return last.rfm_thresholds
    bounds: dict[str, list] = {}
    with connection.cursor() as cursor:
        for column in ("last_order_at", "orders", "revenue"):
            cursor.execute(
                f"""
                SELECT bucket, MAX(v) FROM (
                  SELECT t.{column} AS v, NTILE(5) OVER (ORDER BY t.{column}) AS bucket
                  FROM scoring_co t
                ) q GROUP BY bucket ORDER BY bucket
                """
            )
            values = [value for _, value in cursor.fetchall()][:4]
            if column == "last_order_at":
                values = [v.isoformat() for v in values]
            else:
                values = [float(v) for v in values]
            bounds[column] = values
    return bounds if bounds.get("orders") else {}


def quintile_sql(column: str, bounds: list, params: list) -> str:
    """CASE assigning 1–5 from quintile upper bounds (higher value, higher score)."""
    if not bounds:
        return "CAST(NULL AS INTEGER)"
    whens = []
    for score, bound in enumerate(bounds, start=1):
        whens.append(f"WHEN {column} <= %s THEN {score}")
        params.append(bound)
    return f"(CASE WHEN {column} IS NULL THEN NULL {' '.join(whens)} ELSE 5 END)"


def rfm_scores_sql(thresholds: dict[str, list]) -> tuple[str, list[Any]]:
    """``r``, ``fr`` and ``m`` over the inner query's order totals (``f``), and parameters."""
    params: list[Any] = []
    last_bounds = [datetime.fromisoformat(v) for v in thresholds.get("last_order_at", [])]
    r = quintile_sql("f.last_order_at", last_bounds, params)
    fq = quintile_sql("f.orders", thresholds.get("orders", []), params)
    m = quintile_sql("f.revenue", thresholds.get("revenue", []), params)
    return f"{r} AS r, {fq} AS fr, {m} AS m", params


def rfm_segment_sql() -> tuple[str, list[Any]]:
    """The name of the first RFM segment holding the cell of ``g``'s r, fr and m ('' when
    the learner has no orders or no segment holds the cell), and its parameters."""
    whens = []
    params: list[Any] = []
    for seg in RfmSegment.objects.order_by("priority", "name"):
        whens.append(
            f"WHEN g.r BETWEEN {seg.r_min} AND {seg.r_max} AND g.fr BETWEEN {seg.f_min} "
            f"AND {seg.f_max} AND g.m BETWEEN {seg.m_min} AND {seg.m_max} THEN %s"
        )
        params.append(seg.name)
    if not whens:
        return "''", params
    return f"(CASE WHEN g.r IS NULL THEN '' {' '.join(whens)} ELSE '' END)", params


# The stored RFM columns from ``g``'s r, fr and m.
RFM_COLUMNS_SQL = """g.r AS rfm_recency, g.fr AS rfm_frequency, g.m AS rfm_monetary,
          CASE WHEN g.r IS NULL THEN ''
               ELSE CAST(g.r AS TEXT) || '-' || CAST(g.fr AS TEXT) || '-' || CAST(g.m AS TEXT)
          END AS rfm_cell"""


def rfm_map_cells() -> list[tuple]:
    """The RFM map as plain values, for the pass's fingerprint."""
    return list(
        RfmSegment.objects.order_by("priority", "name").values_list(
            "name", "priority", "r_min", "r_max", "f_min", "f_max", "m_min", "m_max"
        )
    )
