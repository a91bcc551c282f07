"""The one scan of the events a pass makes, and its roll-up per learner.

Every count the LPS, the flags and the stage need comes from a single grouped scan of the
events in scope, per (learner, course), into ``scoring_ev``; ``scoring_lv`` sums it per
learner. All windows end at ``as_of``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from ..models import Event, EventKind, ScoringModel
from .flags import STALL_ACTIVITY_SQL, stall_weeks_params, stall_weeks_sql
from .scope import scope_filter
from .sql import execute


def events_table(model: ScoringModel, as_of: datetime, scoped: bool) -> None:
    """The one scan of the events: per (learner, course), everything a pass needs.

    Assessment scores are summed as NUMERIC: a sum of floats depends on the order of the rows
    (a parallel scan's partial sums, a scoped pass's index order), and a last-bit difference
    is a "changed" score — a steady pass from scratch rewrote ~13,000 unchanged learners.
    """
    window = as_of - timedelta(days=model.activity_window_days)
    silent = as_of - timedelta(days=model.stall_silent_days)
    params = {
        "as_of": as_of,
        "window": window,
        "recent": as_of - timedelta(days=model.login_recent_days),
        "lapsed": as_of - timedelta(days=model.login_lapsed_days),
        **stall_weeks_params(model, silent),
        "silent": silent,
        "paid": as_of - timedelta(days=model.payment_failed_days),
        "declined": as_of - timedelta(days=model.offer_declined_days),
        "last30": as_of - timedelta(days=30),
        "prior": as_of - timedelta(days=120),
    }
    k = EventKind
    sql = f"""
        CREATE TEMPORARY TABLE scoring_ev AS
        SELECT e.learner_id AS learner_id, e.course_id AS course_id,
          COUNT(DISTINCT e.module_id) FILTER (WHERE e.kind = '{k.MODULE_COMPLETED}')
            AS modules_done,
          SUM(CAST(e.value AS NUMERIC)) FILTER (WHERE e.kind = '{k.ASSESSMENT_SUBMITTED}')
            AS assess_sum,
          COUNT(e.value) FILTER (WHERE e.kind = '{k.ASSESSMENT_SUBMITTED}') AS assess_n,
          COUNT(*) FILTER (WHERE e.kind IN ('{k.COMMUNITY_POST}', '{k.COMMUNITY_QUESTION}')
                           AND e.occurred_at >= %(window)s) AS community_n,
          COUNT(*) FILTER (WHERE e.kind = '{k.RESOURCE_DOWNLOADED}'
                           AND e.occurred_at >= %(window)s) AS downloads_n,
          COUNT(*) FILTER (WHERE e.kind = '{k.LOGIN}' AND e.occurred_at >= %(window)s) AS logins_n,
          COUNT(*) FILTER (WHERE e.kind = '{k.LOGIN}' AND e.occurred_at >= %(recent)s)
            AS logins_recent_n,
          COUNT(*) FILTER (WHERE e.kind = '{k.LOGIN}' AND e.occurred_at >= %(lapsed)s)
            AS logins_lapsed_n,
          {stall_weeks_sql(model)}
          COUNT(*) FILTER (WHERE e.kind IN ({STALL_ACTIVITY_SQL}) AND e.occurred_at > %(silent)s)
            AS stall_silent_n,
          MAX(e.occurred_at) FILTER (WHERE e.kind = '{k.SUPPORT_TICKET_OPENED}')
            AS ticket_opened_at,
          MAX(e.occurred_at) FILTER (WHERE e.kind = '{k.SUPPORT_TICKET_RESOLVED}')
            AS ticket_resolved_at,
          COUNT(*) FILTER (WHERE e.kind = '{k.PAYMENT_FAILED}' AND e.occurred_at >= %(paid)s)
            AS payment_failed_n,
          COUNT(*) FILTER (WHERE e.kind = '{k.OFFER_DECLINED}' AND e.occurred_at >= %(declined)s)
            AS declined_n,
          COUNT(*) FILTER (WHERE e.occurred_at >= %(last30)s) AS activity_recent,
          COUNT(*) FILTER (WHERE e.occurred_at >= %(prior)s AND e.occurred_at < %(last30)s)
            AS activity_prior,
          MAX(e.occurred_at) AS last_event_at
        FROM {Event._meta.db_table} e
        WHERE e.occurred_at <= %(as_of)s{scope_filter("e.learner_id", scoped)}
        GROUP BY e.learner_id, e.course_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute("ANALYZE scoring_ev (learner_id, course_id)")


def learner_rollup(model: ScoringModel) -> None:
    """``scoring_ev`` summed per learner into ``scoring_lv``."""
    stall_sums = "".join(
        f"SUM(stall_w{week}) AS stall_w{week}, " for week in range(1, model.stall_active_weeks + 1)
    )
    execute(
        f"""
        CREATE TEMPORARY TABLE scoring_lv AS
        SELECT learner_id,
          SUM(assess_sum) AS assess_sum, SUM(assess_n) AS assess_n,
          SUM(community_n) AS community_n, SUM(downloads_n) AS downloads_n,
          SUM(logins_n) AS logins_n, SUM(logins_recent_n) AS logins_recent_n,
          SUM(logins_lapsed_n) AS logins_lapsed_n, {stall_sums}
          SUM(stall_silent_n) AS stall_silent_n, MAX(ticket_opened_at) AS ticket_opened_at,
          MAX(ticket_resolved_at) AS ticket_resolved_at, SUM(payment_failed_n) AS payment_failed_n,
          SUM(declined_n) AS declined_n, SUM(activity_recent) AS activity_recent,
          SUM(activity_prior) AS activity_prior, MAX(last_event_at) AS last_event_at
        FROM scoring_ev GROUP BY learner_id
        """
    )
    execute("ANALYZE scoring_lv (learner_id)")
