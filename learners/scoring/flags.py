"""Risk flags: stall, open ticket, failed payment, declined offer, refund.

- **stall** (seed 000): a previously active learner — at least ``stall_logins_per_week``
  logins in *each* of the ``stall_active_weeks`` weeks before the silence — with no activity
  (``STALL_ACTIVITY``) in the last ``stall_silent_days``;
- **open ticket**: the latest support ticket opened has not been resolved since;
- **payment failed** / **offer declined**: such an event within ``payment_failed_days`` /
  ``offer_declined_days``;
- **refund**: a refund on an order placed within ``refund_days`` (a commerce fact).

The event counts come from the pass's one scan of the events (``scan.py``, with
``stall_weeks_sql``); the flags are columns of the learner statement (``learner_upsert.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..commerce import commerce
from ..models import EventKind, LearnerScore, ScoringModel

FLAGS = LearnerScore.FLAGS  # stall, open_ticket, payment_failed, offer_declined, refund

# What breaks a stall's silence: logging in or learning (seed 000: "a previously active
# learner (3+ logins/week) goes 10 days without logging in"; a module completed during a
# login gap is not silence). Using a feature, paying, a ticket: neither activity nor silence.
STALL_ACTIVITY = (
    EventKind.LOGIN,
    EventKind.MODULE_COMPLETED,
    EventKind.ASSESSMENT_SUBMITTED,
    EventKind.RESOURCE_DOWNLOADED,
    EventKind.LESSON_BOOKMARKED,
    EventKind.COMMUNITY_POST,
    EventKind.COMMUNITY_QUESTION,
)
STALL_ACTIVITY_SQL = ", ".join(f"'{kind}'" for kind in STALL_ACTIVITY)


def stall_weeks_sql(model: ScoringModel) -> str:
    """One login count per week of the active stretch before the silence: (lo, hi] each,
    week 1 the one just before it (the stall needs ``stall_logins_per_week`` in *each*)."""
    return "".join(
        f"COUNT(*) FILTER (WHERE e.kind = '{EventKind.LOGIN}' "
        f"AND e.occurred_at > %(stall_w{week}_lo)s AND e.occurred_at <= %(stall_w{week}_hi)s) "
        f"AS stall_w{week},\n          "
        for week in range(1, model.stall_active_weeks + 1)
    )


def stall_weeks_params(model: ScoringModel, silent: datetime) -> dict[str, datetime]:
    """The edges of ``stall_weeks_sql``'s weeks, counted back from the start of the silence."""
    return {
        f"stall_w{week}_lo": silent - timedelta(weeks=week)
        for week in range(1, model.stall_active_weeks + 1)
    } | {
        f"stall_w{week}_hi": silent - timedelta(weeks=week - 1)
        for week in range(1, model.stall_active_weeks + 1)
    }


def refunded_join(*, model: ScoringModel, as_of: datetime, scope: Any) -> tuple[str, list]:
    """The learners with a refund in the window, joined to the learners as ``rf``."""
    refunded_sql, params = commerce().refunded_sql(
        since=as_of - timedelta(days=model.refund_days), scope=scope
    )
    return f"LEFT JOIN ({refunded_sql}) rf ON rf.refunded_learner_id = l.id", params


def flag_inputs_sql(model: ScoringModel) -> str:
    """The flags as 0/1 columns of the learner statement's inner query (``lv``: the learner's
    roll-up of the events scan, ``rf``: ``refunded_join``)."""
    every_week = " AND ".join(
        f"COALESCE(lv.stall_w{week}, 0) >= {model.stall_logins_per_week}"
        for week in range(1, model.stall_active_weeks + 1)
    )
    return f"""CASE WHEN {every_week or "1 = 1"}
                AND COALESCE(lv.stall_silent_n, 0) = 0 THEN 1 ELSE 0 END AS stall,
          CASE WHEN lv.ticket_opened_at IS NOT NULL AND (lv.ticket_resolved_at IS NULL
                OR lv.ticket_resolved_at < lv.ticket_opened_at) THEN 1 ELSE 0 END AS open_ticket,
          CASE WHEN COALESCE(lv.payment_failed_n, 0) > 0 THEN 1 ELSE 0 END AS payment_failed,
          CASE WHEN COALESCE(lv.declined_n, 0) > 0 THEN 1 ELSE 0 END AS offer_declined,
          CASE WHEN rf.refunded_learner_id IS NOT NULL THEN 1 ELSE 0 END AS refund"""


def flag_columns_sql(alias: str) -> str:
    """The stored boolean ``flag_*`` columns from the 0/1 columns of ``alias``."""
    return ", ".join(f"{alias}.{flag} = 1 AS flag_{flag}" for flag in FLAGS)
