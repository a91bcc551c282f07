"""The learner statement: one ``INSERT … SELECT`` writing every learner's row of the scope.

Three levels, each fenced so that it computes its columns once (``sql.FENCE``):

1. per learner, the inputs: the LPS components (``lps.py``), the flags (``flags.py``), the
   stage's inputs (``stage.py``), the order totals (``rfm.py``), the last event;
2. the RFM scores, the stage and the rounded LPS;
3. the band, the RFM cell and its segment name, the stored flags.

Only the changed rows are written (``sql.upsert``), and each gets the day's history row in the
same statement (``history.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from ..models import Learner, LearnerScore, ScoringModel
from .flags import flag_columns_sql, flag_inputs_sql, refunded_join
from .history import history_day, with_history
from .lps import SCORE_COLUMNS, band_sql, learner_components_sql, lps_sql
from .rfm import RFM_COLUMNS_SQL, rfm_scores_sql, rfm_segment_sql
from .scope import scope_expr, scope_filter
from .sql import FENCE, upsert
from .stage import renewing_join, stage_inputs_sql, stage_sql

LEARNER_COMPARED = (
    "model_version",
    "lps",
    "band",
    *SCORE_COLUMNS,
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "rfm_segment",
    "stage",
    "flag_stall",
    "flag_open_ticket",
    "flag_payment_failed",
    "flag_offer_declined",
    "flag_refund",
    "last_event_at",
)


def learner_scores(
    model: ScoringModel, as_of: datetime, scoped: bool, thresholds: dict[str, list]
) -> int:
    """Score every learner (of the scope) and write the changed ones; how many changed."""
    scope = scope_expr() if scoped else None
    renewing_sql, renewing_params = renewing_join(model=model, as_of=as_of, scope=scope)
    refunded_sql, refunded_params = refunded_join(model=model, as_of=as_of, scope=scope)
    inner_params: list[Any] = [*renewing_params, *refunded_params]
    inner = f"""
        SELECT l.id AS learner_id, l.created_at AS created_at, l.signed_up_at AS signed_up_at,
          {learner_components_sql(model)},
          {flag_inputs_sql(model)},
          {stage_inputs_sql(model)},
          es.since AS since,
          co.last_order_at AS last_order_at, co.orders AS orders, co.revenue AS revenue,
          lv.last_event_at AS last_event_at
        FROM {Learner._meta.db_table} l
        LEFT JOIN scoring_lv lv ON lv.learner_id = l.id
        LEFT JOIN (
          SELECT learner_id,
            CAST(AVG(CAST(completion AS NUMERIC)) AS DOUBLE PRECISION) AS completion,
            MIN(enrolled_at) AS since
          FROM scoring_es GROUP BY learner_id
        ) es ON es.learner_id = l.id
        LEFT JOIN scoring_co co ON co.learner_id = l.id
        {renewing_sql}
        {refunded_sql}
        WHERE 1 = 1{scope_filter("l.id", scoped)}
    """
    rfm, rfm_params = rfm_scores_sql(thresholds)
    stage, stage_params = stage_sql(model=model, as_of=as_of)
    middle = f"""
        SELECT f.*, {rfm}, {stage} AS stage,
          ROUND(CAST({lps_sql(model)} AS NUMERIC), 4) AS lps
        FROM ({inner}{FENCE}) f{FENCE}
    """
    rfm_segment, segment_params = rfm_segment_sql()
    select = f"""
        SELECT g.learner_id, CAST(%s AS INTEGER) AS model_version, g.lps,
          {band_sql(model, "g.lps")} AS band, {", ".join(SCORE_COLUMNS)},
          {RFM_COLUMNS_SQL},
          {rfm_segment} AS rfm_segment, g.stage AS stage,
          {flag_columns_sql("g")}, g.last_event_at AS last_event_at,
          %s AS computed_at
        FROM ({middle}) g
    """
    params = [
        model.version,
        *segment_params,
        as_of,
        *rfm_params,
        *stage_params,
        *inner_params,
    ]
    sql = upsert(
        LearnerScore._meta.db_table,
        "learner_id",
        ("learner_id", *LEARNER_COMPARED[:-1], "rfm_cell", "last_event_at", "computed_at"),
        LEARNER_COMPARED,
        select,
        returning=("learner_id", "lps", "band", "stage"),
    )
    with connection.cursor() as cursor:
        cursor.execute(with_history(sql), [*params, history_day(as_of)])
        return cursor.fetchone()[0]
