"""The lifecycle stage (seed 003): at risk, renewal, onboarding, growth or maturity.

First match wins: **at risk** when activity is declining (the last 30 days' events below
``decline_ratio`` of the 30-day average of the 90 days before, which held at least
``decline_min_prior_events``) or the learner stalled (``flags.py``); **renewal** when a live
subscription renews within ``renewal_window_days`` (a commerce fact); then by the time since
sign-up (else the first enrolment, else the learner's creation): **onboarding** for
``onboarding_days``, **growth** until ``growth_days``, then **maturity**.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..commerce import commerce
from ..models import ScoringModel


def renewing_join(*, model: ScoringModel, as_of: datetime, scope: Any) -> tuple[str, list]:
    """The learners whose subscription renews in the window, joined to the learners as
    ``rn``."""
    renewing_sql, params = commerce().renewing_sql(
        start=as_of, end=as_of + timedelta(days=model.renewal_window_days), scope=scope
    )
    return f"LEFT JOIN ({renewing_sql}) rn ON rn.renewing_learner_id = l.id", params


def stage_inputs_sql(model: ScoringModel) -> str:
    """``renewing`` and ``declining`` as 0/1 columns of the learner statement's inner query
    (``lv``: the learner's roll-up of the events scan; ``rn``: ``renewing_join``)."""
    return f"""CASE WHEN rn.renewing_learner_id IS NOT NULL THEN 1 ELSE 0 END AS renewing,
          CASE WHEN COALESCE(lv.activity_prior, 0) >= {model.decline_min_prior_events}
                AND COALESCE(lv.activity_recent, 0) * 3.0
                    < {float(model.decline_ratio)} * lv.activity_prior
               THEN 1 ELSE 0 END AS declining"""


def stage_sql(*, model: ScoringModel, as_of: datetime) -> tuple[str, list[Any]]:
    """The stage CASE over the inner query's columns (``f``), and its parameters."""
    onboarding = as_of - timedelta(days=model.onboarding_days)
    growth = as_of - timedelta(days=model.growth_days)
    sql = """(CASE WHEN f.declining = 1 OR f.stall = 1 THEN 'at_risk'
                     WHEN f.renewing = 1 THEN 'renewal'
                     WHEN COALESCE(f.signed_up_at, f.since, f.created_at) >= %s
                       THEN 'onboarding'
                     WHEN COALESCE(f.signed_up_at, f.since, f.created_at) >= %s THEN 'growth'
                     ELSE 'maturity' END)"""
    return sql, [onboarding, growth]
