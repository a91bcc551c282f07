"""Which learners a pass scores: its scope, the temporary table ``scoring_scope``.

An incremental pass claims learners marked dirty (``claim_scope``; one shard of them when
several passes run at once); a delta pass adds everyone whose values time alone can have
changed since the previous pass (``delta_scope``); a full pass has no scope table and scores
everyone. The other steps restrict their statements to the scope with ``scope_filter``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models.expressions import RawSQL

from ..commerce import commerce
from ..models import DirtyLearner, Enrollment, Event, Learner, ScoringModel
from .sql import analyze, execute


def claim_scope(limit: int | None, shard: tuple[int, int] | None = None) -> int:
    """Move up to ``limit`` (None: all) dirty learners — of ``shard`` (k, n): those whose id
    is k modulo n — into ``scoring_scope``; how many.

    ``SKIP LOCKED``: concurrent incremental passes claim disjoint learners."""
    dirty = DirtyLearner._meta.db_table
    execute("CREATE TEMPORARY TABLE scoring_scope (learner_id bigint PRIMARY KEY)")
    sharded = " WHERE MOD(learner_id, %s) = %s" if shard is not None else ""
    limited = " ORDER BY id LIMIT %s" if limit is not None else ""
    params: list[Any] = [shard[1], shard[0]] if shard is not None else []
    if limit is not None:
        params.append(limit)
    claimed = execute(
        "INSERT INTO scoring_scope (learner_id) SELECT DISTINCT learner_id FROM ("
        f"SELECT learner_id FROM {dirty}{sharded}{limited} FOR UPDATE SKIP LOCKED) d",
        params,
    )
    execute(f"DELETE FROM {dirty} WHERE learner_id IN (SELECT learner_id FROM scoring_scope)")
    # Without statistics the planner assumes a large scope and scans whole tables.
    analyze("scoring_scope")
    return claimed


def delta_scope(model: ScoringModel, since: datetime, as_of: datetime) -> int:
    """Everyone whose scores, stage or flags can differ between a pass at ``since`` and now.

    Values change only when an input changes or time moves an input across the edge of a
    window, so the scope is:

    - every learner marked dirty (new events, syncs and admin edits mark them in the same
      transaction as the write — also the writes a previous pass could not yet see);
    - events that crossed an edge between ``since`` and ``as_of``: for each window of ``w``
      days (activity, login recency and lapse, both stall edges, payment failure, decline,
      the 30- and 120-day decline windows) the events with ``since − w ≤ occurred_at <
      as_of − w``, and the events dated in (since, as_of];
    - enrolments and learners crossing the onboarding and growth edges, enrolments starting or
      completing in (since, as_of];
    - the commerce facts' own edges: subscriptions entering or leaving the renewal window,
      refunds leaving the refund window.

    Each range is an index range scan: an hour between passes touches a few thousand rows.
    """
    count = claim_scope(None)
    windows = {
        model.activity_window_days,
        model.login_recent_days,
        model.login_lapsed_days,
        model.stall_silent_days,
        *(model.stall_silent_days + 7 * week for week in range(1, model.stall_active_weeks + 1)),
        model.payment_failed_days,
        model.offer_declined_days,
        30,
        120,
    }
    selects: list[str] = []
    params: list[Any] = []
    events, enrollments, learners = (
        Event._meta.db_table,
        Enrollment._meta.db_table,
        Learner._meta.db_table,
    )

    def crossing(
        table: str, column: str, low: datetime, high: datetime, *, upper_closed: bool = False
    ) -> None:
        """Rows whose ``column`` lies in [low, high) — (low, high] with ``upper_closed``."""
        key = "id" if table == learners else "learner_id"
        lo, hi = (">", "<=") if upper_closed else (">=", "<")
        selects.append(
            f"SELECT {key} AS learner_id FROM {table} WHERE {column} {lo} %s AND {column} {hi} %s"
        )
        params.extend([low, high])

    for days in sorted(windows):
        back = timedelta(days=days)
        crossing(events, "occurred_at", since - back, as_of - back)
    crossing(events, "occurred_at", since, as_of, upper_closed=True)
    for days in (model.onboarding_days, model.growth_days):
        back = timedelta(days=days)
        crossing(enrollments, "enrolled_at", since - back, as_of - back)
        crossing(learners, "created_at", since - back, as_of - back)
        crossing(learners, "signed_up_at", since - back, as_of - back)
    crossing(enrollments, "enrolled_at", since, as_of, upper_closed=True)
    crossing(enrollments, "completed_at", since, as_of, upper_closed=True)
    commerce_sql, commerce_params = commerce().edges_sql(
        since=since,
        until=as_of,
        renewal_days=model.renewal_window_days,
        refund_days=model.refund_days,
    )
    selects.append(f"SELECT c.* FROM ({commerce_sql}) c")
    params.extend(commerce_params)
    union = " UNION ".join(selects)
    count += execute(
        f"INSERT INTO scoring_scope (learner_id) SELECT u.learner_id FROM ({union}) u "
        "WHERE u.learner_id NOT IN (SELECT learner_id FROM scoring_scope)",
        params,
    )
    analyze("scoring_scope")
    return count


def scope_expr() -> RawSQL:
    """The scope's learner ids, for the commerce facts' SQL."""
    return RawSQL("SELECT learner_id FROM scoring_scope", [])


def scope_filter(column: str, scoped: bool) -> str:
    """`` AND column IN (the scope)`` when the pass is scoped, else nothing."""
    return f" AND {column} IN (SELECT learner_id FROM scoring_scope)" if scoped else ""
