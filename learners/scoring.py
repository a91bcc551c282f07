"""Learner Progress Score, RFM, lifecycle stage and risk flags — set-based SQL.

One pass is a handful of statements, whatever the number of learners:

1. claim the scope (incremental: learners marked dirty by ingestion; full: everyone);
2. one scan of the events in scope, grouped by (learner, course), into a temporary table —
   every count the scores, flags and stages need comes from this single scan;
3. roll that up per learner (a second, small temporary table);
4. upsert enrollment scores, then learner scores (LPS, components, RFM, stage, flags),
   each one ``INSERT … SELECT … ON CONFLICT DO UPDATE``;
5. upsert today's history row; refresh segment membership for the scope.

The SQL is portable between PostgreSQL and SQLite: timestamps are compared with parameters
computed in Python (no date arithmetic in SQL), ``min(1, x / cap)`` is a CASE, and the pieces
that touch orders and subscriptions come from the commerce app (``learners.commerce``).
All windows end at ``as_of`` (default: now), so history can be scored as of any date.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from .commerce import commerce
from .models import (
    Event,
    EventKind,
    Learner,
    LearnerScore,
    RfmSegment,
    ScoringModel,
    ScoringRun,
)

INCREMENTAL_BATCH = 50_000
# pg_advisory_xact_lock key serialising full and delta passes ("LPS" in ASCII).
PASS_LOCK = 0x4C5053


def scoring_model_active() -> ScoringModel:
    """The active scoring model; creates v1 with the seeds' defaults if there is none."""
    active = ScoringModel.objects.filter(is_active=True).first()
    if active is None:
        active, _ = ScoringModel.objects.get_or_create(
            version=1, defaults={"is_active": True, "note": "Defaults from the seeds."}
        )
    return active


def scoring_model_new_version(
    *, base: ScoringModel, changes: dict[str, Any], user=None
) -> ScoringModel:
    """Save ``changes`` as the next version and make it the active one."""
    fields = {
        f.name: getattr(base, f.name)
        for f in ScoringModel._meta.concrete_fields
        if f.editable and f.name not in {"id", "created_by", "note"}
    }
    fields.update(changes)
    with transaction.atomic():
        last = ScoringModel.objects.select_for_update().order_by("-version").first()
        ScoringModel.objects.filter(is_active=True).update(is_active=False)
        return ScoringModel.objects.create(
            version=(last.version if last else 0) + 1, is_active=True, created_by=user, **fields
        )


@dataclass
class PassResult:
    """``learners`` scored (the scope); how many scores changed is on ``run.changed``."""

    run: ScoringRun
    learners: int
    timings: dict[str, float] = field(default_factory=dict)


class StepTimer:
    """Seconds per named step of a pass (``lap`` closes the step that just ended)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 4)
        self._last = now


def _ts(value: datetime) -> Any:
    """A datetime as the backend compares it with stored values."""
    return connection.ops.adapt_datetimefield_value(value)


def _exec(sql: str, params: Iterable[Any] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def _capped(expr: str, cap: int) -> str:
    """min(1, expr / cap) in portable SQL; cap 0 means the component is always full."""
    if cap <= 0:
        return "1.0"
    return f"(CASE WHEN {expr} >= {cap} THEN 1.0 ELSE ({expr}) * 1.0 / {cap} END)"


def scoring_fingerprint(model: ScoringModel) -> str:
    """What a delta pass must share with the pass before it: the model and the RFM map."""
    cells = RfmSegment.objects.order_by("priority", "name").values_list(
        "name", "priority", "r_min", "r_max", "f_min", "f_max", "m_min", "m_max"
    )
    return hashlib.sha256(repr((model.version, list(cells))).encode()).hexdigest()[:32]


def score_scheduled(*, as_of: datetime | None = None) -> PassResult:
    """The scheduled pass that keeps every learner's scores true as of ``as_of``.

    A **delta pass** when it can: it rescores only the learners whose inputs can differ from
    the previous full or delta pass (``delta_scope``) and refreshes every segment. A pass
    **from scratch** (``full``) when there is no previous pass, the scoring model or the RFM
    map changed since, time went backwards, or the last pass from scratch is older than
    ``SCORING_FULL_EVERY_HOURS`` (which also recomputes the RFM quintile bounds).
    Both leave the same scores (tests/learners/test_scoring_delta.py).
    """
    as_of = as_of or timezone.now()
    model = scoring_model_active()
    passes = ScoringRun.objects.filter(finished_at__isnull=False).order_by("-as_of")
    last = passes.filter(kind__in=["full", "delta"]).first()
    last_full = passes.filter(kind="full").first()
    every = timedelta(hours=settings.SCORING_FULL_EVERY_HOURS)
    if (
        last is None
        or last_full is None
        or last.fingerprint != scoring_fingerprint(model)
        or as_of <= last.as_of
        or as_of - last_full.as_of >= every
    ):
        return score_learners(as_of=as_of, full=True)
    return score_learners(as_of=as_of, since=last.as_of)


@dataclass
class DirtyPassResult:
    """What ``score_dirty_learners`` did: the passes it ran (several at once in a round)."""

    passes: list[PassResult] = field(default_factory=list)

    @property
    def learners(self) -> int:
        return sum(result.learners for result in self.passes)


def score_dirty_learners(
    *,
    as_of: datetime | None = None,
    batch: int = INCREMENTAL_BATCH,
    max_rounds: int = 20,
    parallelism: int | None = None,
) -> DirtyPassResult:
    """Score every learner marked dirty (up to ``max_rounds`` × ``batch`` per parallel share).

    The incremental pass as the scoring worker runs it. On PostgreSQL, when there are enough
    dirty learners (``SCORING_PARALLEL_MIN_LEARNERS`` per share), a round runs
    ``SCORING_PARALLELISM`` incremental passes at once, each on its own connection and its own
    shard of learners (id modulo the number of passes): the statements of one pass are
    CPU-bound row processing in a single PostgreSQL backend, and temporary tables rule out
    PostgreSQL's own parallel query (bench/scoring.py: 10,000 learners, ~1.8 s in one pass).
    Shards never share a learner, so the passes write disjoint rows; they meet only on the
    segment rows, which each locks in one order. Same scores as one pass (tests).
    """
    parallelism = parallelism or settings.SCORING_PARALLELISM
    from .models import DirtyLearner, Segment

    outcome = DirtyPassResult()
    for _ in range(max_rounds):
        ways = 1
        if connection.vendor == "postgresql" and parallelism > 1:
            waiting = DirtyLearner.objects.values("learner_id").distinct().count()
            ways = max(1, min(parallelism, waiting // settings.SCORING_PARALLEL_MIN_LEARNERS))
            if Segment.objects.filter(is_active=True, refreshed_at__isnull=True).exists():
                ways = 1  # a segment's first refresh counts everyone: one pass does it
        if ways == 1:
            results = [score_learners(as_of=as_of, limit=batch)]
        else:
            with ThreadPoolExecutor(max_workers=ways) as pool:
                futures = [
                    pool.submit(_pass_in_own_connection, as_of=as_of, limit=batch, shard=(k, ways))
                    for k in range(ways)
                ]
                results = [future.result() for future in futures]
        outcome.passes.extend(results)
        if all(result.learners < batch for result in results):
            break
    return outcome


def _pass_in_own_connection(**kwargs: Any) -> PassResult:
    """An incremental pass in a thread: on the thread's own connection, closed after."""
    try:
        return score_learners(**kwargs)
    finally:
        connection.close()


def score_learners(
    *,
    as_of: datetime | None = None,
    full: bool = False,
    since: datetime | None = None,
    limit: int = INCREMENTAL_BATCH,
    shard: tuple[int, int] | None = None,
) -> PassResult:
    """Score learners; returns the run record.

    ``full=True`` scores everyone from scratch and recomputes the RFM quintile bounds.
    ``since``: a delta pass after a full or delta pass at ``since`` — every learner whose
    inputs can have changed in between (see ``_delta_scope``). Otherwise up to ``limit``
    learners marked dirty are claimed and scored (others wait for the next pass); with
    ``shard=(k, n)`` only learners whose id is k modulo n (``score_dirty_learners`` runs n
    such passes at once).
    Idempotent: scoring the same data twice stores the same values. Concurrent incremental
    passes on PostgreSQL claim disjoint learners (``SKIP LOCKED``); full and delta passes
    take turns (an advisory lock).
    """
    as_of = as_of or timezone.now()
    model = scoring_model_active()
    timer = StepTimer()
    kind = "full" if full else "delta" if since is not None else "incremental"
    run = ScoringRun(
        kind=kind,
        model_version=model.version,
        fingerprint=scoring_fingerprint(model),
        as_of=as_of,
        started_at=timezone.now(),
    )
    with transaction.atomic():
        _drop_temp_tables()
        scoped = not full
        count = 0
        if connection.vendor == "postgresql":
            if kind != "incremental":
                _exec("SELECT pg_advisory_xact_lock(%s)", [PASS_LOCK])
            _planner_settings(full=full)
        if scoped:
            if since is not None:
                count = _delta_scope(model, since, as_of)
            else:
                count = _claim_scope(limit, shard=shard)
            timer.lap("scope")
            # An empty delta pass still refreshes the segments and records its time.
            if count == 0 and since is None:
                _drop_temp_tables()
                run.finished_at = timezone.now()
                run.timings = timer.timings
                return PassResult(run=run, learners=0, timings=timer.timings)
        _events_table(model, as_of, scoped)
        timer.lap("events_scan")
        _learner_rollup(model)
        timer.lap("rollup")
        _enrollment_scores(model, as_of, scoped)
        timer.lap("enrollment_scores")
        # Incremental passes reuse the last full pass's quintile bounds, so they only need
        # their own learners' totals; without such bounds yet, everyone's are needed.
        has_bounds = ScoringRun.objects.filter(kind="full").exclude(rfm_thresholds={}).exists()
        _order_totals(scoped=scoped and has_bounds)
        timer.lap("order_totals")
        thresholds = _rfm_thresholds(fresh=full)
        timer.lap("rfm_thresholds")
        changed = _learner_scores(model, as_of, scoped, thresholds)
        learners = count if scoped else Learner.objects.count()
        timer.lap("learner_scores")
        if full:
            # Fresh statistics before the segment queries plan against these tables: with
            # stale ones PostgreSQL once chose an O(n²) anti-join (1.1 s for 4,667 members).
            _analyze("learners_learnerscore", "learners_enrollmentscore")
        if connection.vendor != "postgresql":
            _history(as_of, scoped)  # on PostgreSQL the learner upsert writes history itself
        timer.lap("history")
        from .segments import segments_refresh

        # Segments can hold conditions on time windows (event counts, last event's age), so a
        # delta pass refreshes all of them.
        segments_refresh(as_of=as_of, scoped=kind == "incremental")
        if full:
            _analyze("learners_segmentmembership")
        timer.lap("segments")
        _drop_temp_tables()
        run.learners = learners
        run.changed = changed
        run.rfm_thresholds = thresholds
        run.finished_at = timezone.now()
        run.timings = timer.timings
        run.save()
        timer.lap("finish")
    timer.lap("commit")
    return PassResult(run=run, learners=learners, timings=timer.timings)


def _planner_settings(*, full: bool) -> None:
    """PostgreSQL settings for this pass's transaction only (``SET LOCAL``).

    Each was measured with bench/scoring.py at 1,000,000 learners and 10,000,000 events:

    - ``work_mem``: hash joins and sorts over a million rows spill to disk in the default
      4 MB (``SCORING_WORK_MEM_MB``, per sort or hash, per parallel worker);
    - ``synchronous_commit = off`` (see below);
    - ``jit = off``: compiling these large statements took 0.7–2 s each, more than it saved;
    - a full pass reads whole tables, and PostgreSQL liked walking the (learner, kind, time)
      index to get events already sorted by learner, visiting the table's pages in random
      order: 45 s for the events, against 9–13 s for a parallel sequential scan and sort —
      so a full pass plans without index scans;
    - a scoped pass reads ~10 rows per learner for 1 % of learners: index probes whose pages
      are in memory. With the default ``random_page_cost`` (4, tuned for spinning disks) it
      seq-scanned all 10,000,000 events instead: 8.4 s → 4.8 s for 10,000 learners
      (``SCORING_RANDOM_PAGE_COST``).
    """
    _exec(f"SET LOCAL work_mem = '{int(settings.SCORING_WORK_MEM_MB)}MB'")
    # Scores are derived data: a pass whose commit a crash loses is simply redone (its
    # dirty-learner claims are lost with it), so it need not wait for the WAL flush.
    _exec("SET LOCAL synchronous_commit = off")
    _exec("SET LOCAL jit = off")
    if full:
        _exec("SET LOCAL enable_indexscan = off")
    else:
        _exec(f"SET LOCAL random_page_cost = {float(settings.SCORING_RANDOM_PAGE_COST):.2f}")


TEMP_TABLES = ("scoring_scope", "scoring_ev", "scoring_lv", "scoring_es", "scoring_co")


def _analyze(*tables: str) -> None:
    """Statistics for the planner; on temporary tables, of the join keys only (the other
    columns' statistics cost ~60 ms a table and change no plan)."""
    if connection.vendor == "postgresql":
        for table in tables:
            _exec(f"ANALYZE {table}")


def _drop_temp_tables() -> None:
    for name in TEMP_TABLES:
        _exec(f"DROP TABLE IF EXISTS {name}")


def _claim_scope(limit: int | None, shard: tuple[int, int] | None = None) -> int:
    """Move up to ``limit`` (None: all) dirty learners — of ``shard`` (k, n): those whose id
    is k modulo n — into ``scoring_scope``; how many."""
    _exec("CREATE TEMPORARY TABLE scoring_scope (learner_id bigint PRIMARY KEY)")
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sharded = " WHERE MOD(learner_id, %s) = %s" if shard is not None else ""
    limited = " ORDER BY id LIMIT %s" if limit is not None else ""
    params: list[Any] = [shard[1], shard[0]] if shard is not None else []
    if limit is not None:
        params.append(limit)
    claimed = _exec(
        "INSERT INTO scoring_scope (learner_id) SELECT DISTINCT learner_id FROM ("
        f"SELECT learner_id FROM learners_dirtylearner{sharded}{limited}{lock}) d",
        params,
    )
    _exec(
        "DELETE FROM learners_dirtylearner WHERE learner_id IN "
        "(SELECT learner_id FROM scoring_scope)"
    )
    # Without statistics the planner assumes a large scope and scans whole tables.
    _analyze("scoring_scope")
    return claimed


def _delta_scope(model: ScoringModel, since: datetime, as_of: datetime) -> int:
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
    count = _claim_scope(None)
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

    def crossing(
        table: str, column: str, low: datetime, high: datetime, *, upper_closed: bool = False
    ) -> None:
        """Rows whose ``column`` lies in [low, high) — (low, high] with ``upper_closed``."""
        key = "id" if table == "learners_learner" else "learner_id"
        lo, hi = (">", "<=") if upper_closed else (">=", "<")
        selects.append(
            f"SELECT {key} AS learner_id FROM {table} WHERE {column} {lo} %s AND {column} {hi} %s"
        )
        params.extend([_ts(low), _ts(high)])

    for days in sorted(windows):
        back = timedelta(days=days)
        crossing(Event._meta.db_table, "occurred_at", since - back, as_of - back)
    crossing(Event._meta.db_table, "occurred_at", since, as_of, upper_closed=True)
    for days in (model.onboarding_days, model.growth_days):
        back = timedelta(days=days)
        crossing("learners_enrollment", "enrolled_at", since - back, as_of - back)
        crossing("learners_learner", "created_at", since - back, as_of - back)
        crossing("learners_learner", "signed_up_at", since - back, as_of - back)
    crossing("learners_enrollment", "enrolled_at", since, as_of, upper_closed=True)
    crossing("learners_enrollment", "completed_at", since, as_of, upper_closed=True)
    commerce_sql, commerce_params = commerce().edges_sql(
        since=since,
        until=as_of,
        renewal_days=model.renewal_window_days,
        refund_days=model.refund_days,
    )
    selects.append(f"SELECT c.* FROM ({commerce_sql}) c")
    params.extend(commerce_params)
    union = " UNION ".join(selects)
    count += _exec(
        f"INSERT INTO scoring_scope (learner_id) SELECT u.learner_id FROM ({union}) u "
        "WHERE u.learner_id NOT IN (SELECT learner_id FROM scoring_scope)",
        params,
    )
    _analyze("scoring_scope")
    return count


def _scope_expr() -> RawSQL:
    return RawSQL("SELECT learner_id FROM scoring_scope", [])


def _scope_filter(column: str, scoped: bool) -> str:
    return f" AND {column} IN (SELECT learner_id FROM scoring_scope)" if scoped else ""


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


def _stall_weeks_sql(model: ScoringModel) -> str:
    """One login count per week of the active stretch before the silence: (lo, hi] each,
    week 1 the one just before it (the stall needs ``stall_logins_per_week`` in *each*)."""
    return "".join(
        f"COUNT(*) FILTER (WHERE e.kind = '{EventKind.LOGIN}' "
        f"AND e.occurred_at > %(stall_w{week}_lo)s AND e.occurred_at <= %(stall_w{week}_hi)s) "
        f"AS stall_w{week},\n          "
        for week in range(1, model.stall_active_weeks + 1)
    )


def _events_table(model: ScoringModel, as_of: datetime, scoped: bool) -> None:
    """The one scan of the events: per (learner, course), everything a pass needs.

    Assessment scores are summed as NUMERIC: a sum of floats depends on the order of the rows
    (a parallel scan's partial sums, a scoped pass's index order), and a last-bit difference
    is a "changed" score — a steady pass from scratch rewrote ~13,000 unchanged learners.
    """
    window = as_of - timedelta(days=model.activity_window_days)
    silent = as_of - timedelta(days=model.stall_silent_days)
    stall_weeks = {
        f"stall_w{week}_lo": _ts(silent - timedelta(weeks=week))
        for week in range(1, model.stall_active_weeks + 1)
    } | {
        f"stall_w{week}_hi": _ts(silent - timedelta(weeks=week - 1))
        for week in range(1, model.stall_active_weeks + 1)
    }
    params = {
        "as_of": _ts(as_of),
        "window": _ts(window),
        "recent": _ts(as_of - timedelta(days=model.login_recent_days)),
        "lapsed": _ts(as_of - timedelta(days=model.login_lapsed_days)),
        **stall_weeks,
        "silent": _ts(silent),
        "paid": _ts(as_of - timedelta(days=model.payment_failed_days)),
        "declined": _ts(as_of - timedelta(days=model.offer_declined_days)),
        "last30": _ts(as_of - timedelta(days=30)),
        "prior": _ts(as_of - timedelta(days=120)),
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
          {_stall_weeks_sql(model)}
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
        WHERE e.occurred_at <= %(as_of)s{_scope_filter("e.learner_id", scoped)}
        GROUP BY e.learner_id, e.course_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE scoring_ev (learner_id, course_id)")


def _learner_rollup(model: ScoringModel) -> None:
    stall_sums = "".join(
        f"SUM(stall_w{week}) AS stall_w{week}, " for week in range(1, model.stall_active_weeks + 1)
    )
    _exec(
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
    if connection.vendor == "postgresql":
        _exec("ANALYZE scoring_lv (learner_id)")


def _login_sql(model: ScoringModel, alias: str) -> str:
    recency = (
        f"(CASE WHEN COALESCE({alias}.logins_recent_n, 0) > 0 THEN 1.0 "
        f"WHEN COALESCE({alias}.logins_lapsed_n, 0) > 0 THEN 0.5 ELSE 0.0 END)"
    )
    frequency = _capped(f"COALESCE({alias}.logins_n, 0)", model.login_cap)
    return f"(0.5 * {recency} + 0.5 * {frequency})"


def _lps_sql(model: ScoringModel) -> str:
    return (
        f"({model.weight_completion} * completion + {model.weight_assessment} * assessment + "
        f"{model.weight_community} * community + {model.weight_downloads} * downloads + "
        f"{model.weight_login} * login)"
    )


def _band_sql(model: ScoringModel, lps: str) -> str:
    """The band of the stored (rounded) LPS, so a score shown as 70.0000 is always High."""
    return (
        f"(CASE WHEN {lps} >= {model.band_high} THEN 'high' "
        f"WHEN {lps} >= {model.band_mid} THEN 'mid' ELSE 'low' END)"
    )


def _fence() -> str:
    """Keep PostgreSQL from inlining a subquery into the one above it.

    Inlined, every reference to a computed column re-evaluates its expression: the LPS three
    times per row and each RFM quintile CASE once per named cell — most of the upserts' time
    (bench/scoring.py: 1.1 s of 1.9 s for 150,000 enrollment scores). ``OFFSET 0`` makes
    each level compute its columns once.
    """
    return " OFFSET 0" if connection.vendor == "postgresql" else ""


SCORE_COLUMNS = ("completion", "assessment", "community", "downloads", "login")
ENROLLMENT_COMPARED = ("model_version", "lps", "band", *SCORE_COLUMNS)
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


def _changed(table: str, columns: tuple[str, ...]) -> str:
    """The upsert's WHERE: update only rows whose values changed.

    A steady-state pass then rewrites only the learners whose scores moved; rewriting every
    row cost ~60 % of a full pass (index maintenance on 100,000 unchanged rows). So
    ``computed_at`` is when the values last changed; ScoringRun records every pass.
    """
    old = ", ".join(f"{table}.{c}" for c in columns)
    new = ", ".join(f"excluded.{c}" for c in columns)
    return f"({old}) IS DISTINCT FROM ({new})"


def _upsert(
    table: str,
    key: str,
    columns: tuple[str, ...],
    compared: tuple[str, ...],
    select: str,
    returning: tuple[str, ...] = (),
) -> str:
    """SQL writing ``select``'s rows (named like ``columns``) into ``table``, changed rows only.

    PostgreSQL: one statement. One join of the new values with the stored ones keeps the rows
    that are new or differ (a hash join over the whole table on a full pass); an ``UPDATE``
    writes the changed ones and an ``INSERT`` the new ones. ``INSERT … ON CONFLICT DO UPDATE``
    instead probed and locked all 1,500,000 existing rows one by one: 7 of its 15 s in a
    steady-state pass (bench/scoring.py). Returns the written rows' ``returning`` columns as
    ``changed``, for the caller to ``SELECT`` from. SQLite: the plain upsert.
    """
    names = ", ".join(columns)
    ret = ", ".join(returning or (key,))
    if connection.vendor != "postgresql":
        return f"""
            INSERT INTO {table} ({names}) SELECT {names} FROM ({select}) s WHERE 1 = 1
            ON CONFLICT ({key}) DO UPDATE SET
              {", ".join(f"{c} = excluded.{c}" for c in columns if c != key)}
            WHERE {_changed(table, compared)}
        """
    old = ", ".join(f"t.{c}" for c in compared)
    new = ", ".join(f"s.{c}" for c in compared)
    return f"""
        WITH todo AS MATERIALIZED (
          SELECT s.*, t.{key} IS NULL AS is_new
          FROM ({select}) s LEFT JOIN {table} t ON t.{key} = s.{key}
          WHERE t.{key} IS NULL OR ({old}) IS DISTINCT FROM ({new})
        ),
        updated AS (
          UPDATE {table} t SET {", ".join(f"{c} = s.{c}" for c in columns if c != key)}
          FROM todo s WHERE t.{key} = s.{key} AND NOT s.is_new
          RETURNING {", ".join(f"t.{c}" for c in returning or (key,))}
        ),
        inserted AS (
          INSERT INTO {table} ({names}) SELECT {names} FROM todo WHERE is_new
          ON CONFLICT ({key}) DO NOTHING
          RETURNING {ret}
        ),
        changed AS (SELECT {ret} FROM updated UNION ALL SELECT {ret} FROM inserted)
    """


def _enrollment_scores(model: ScoringModel, as_of: datetime, scoped: bool) -> None:
    lps = _lps_sql(model)
    inner = f"""
        SELECT en.id AS enrollment_id, en.learner_id AS learner_id, en.course_id AS course_id,
          en.enrolled_at AS enrolled_at,
          CASE WHEN en.completed_at IS NOT NULL AND en.completed_at <= %s THEN 1.0
               WHEN COALESCE(mc.n, 0) > 0 THEN
                 (CASE WHEN COALESCE(ev.modules_done, 0) >= mc.n THEN 1.0
                       ELSE COALESCE(ev.modules_done, 0) * 1.0 / mc.n END)
               ELSE en.progress / 100.0 END AS completion,
          CASE WHEN COALESCE(ev.assess_n, 0) > 0
               THEN CAST(ev.assess_sum * 1.0 / ev.assess_n / 100.0 AS DOUBLE PRECISION)
               ELSE 0.0 END AS assessment,
          {_capped("COALESCE(ev.community_n, 0)", model.community_cap)} AS community,
          {_capped("COALESCE(ev.downloads_n, 0)", model.downloads_cap)} AS downloads,
          {_login_sql(model, "lv")} AS login
        FROM learners_enrollment en
        LEFT JOIN scoring_ev ev ON ev.learner_id = en.learner_id AND ev.course_id = en.course_id
        LEFT JOIN scoring_lv lv ON lv.learner_id = en.learner_id
        LEFT JOIN (SELECT course_id, COUNT(*) AS n FROM learners_module GROUP BY course_id) mc
          ON mc.course_id = en.course_id
        WHERE en.enrolled_at <= %s{_scope_filter("en.learner_id", scoped)}
    """
    columns = ", ".join(SCORE_COLUMNS)
    # Kept for the learner scores (mean completion, first enrolment) so that they need not
    # read the enrolments again.
    _exec(
        f"""
        CREATE TEMPORARY TABLE scoring_es AS
        SELECT t.enrollment_id, t.learner_id, t.course_id, t.enrolled_at,
          CAST(%s AS INTEGER) AS model_version, t.lps, {_band_sql(model, "t.lps")} AS band,
          {columns}
        FROM (
          SELECT s.*, ROUND(CAST({lps} AS NUMERIC), 4) AS lps FROM ({inner}{_fence()}) s{_fence()}
        ) t
        """,
        [model.version, _ts(as_of), _ts(as_of)],
    )
    _analyze("scoring_es (learner_id, enrollment_id)")
    sql = _upsert(
        "learners_enrollmentscore",
        "enrollment_id",
        ("enrollment_id", "learner_id", "course_id", *ENROLLMENT_COMPARED, "computed_at"),
        ENROLLMENT_COMPARED,
        "SELECT e.*, %s AS computed_at FROM scoring_es e",
    )
    if connection.vendor == "postgresql":
        sql += " SELECT COUNT(*) FROM changed"
    _exec(sql, [_ts(as_of)])


def _order_totals(*, scoped: bool) -> None:
    """Per learner: last order, orders, net revenue — once, for RFM bounds and scores."""
    totals_sql, params = commerce().order_totals_sql(scope=_scope_expr() if scoped else None)
    _exec(f"CREATE TEMPORARY TABLE scoring_co AS SELECT t.* FROM ({totals_sql}) t", params)
    if connection.vendor == "postgresql":
        _exec("ANALYZE scoring_co (learner_id)")


def _rfm_thresholds(*, fresh: bool) -> dict[str, list]:
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
                values = [_as_iso(v) for v in values]
            else:
                values = [float(v) for v in values]
            bounds[column] = values
    return bounds if bounds.get("orders") else {}


def _as_iso(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    parsed = datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def _quintile_sql(column: str, bounds: list, params: list) -> str:
    """CASE assigning 1–5 from quintile upper bounds (higher value, higher score)."""
    if not bounds:
        return "CAST(NULL AS INTEGER)"
    whens = []
    for score, bound in enumerate(bounds, start=1):
        whens.append(f"WHEN {column} <= %s THEN {score}")
        params.append(bound)
    return f"(CASE WHEN {column} IS NULL THEN NULL {' '.join(whens)} ELSE 5 END)"


def _learner_scores(
    model: ScoringModel, as_of: datetime, scoped: bool, thresholds: dict[str, list]
) -> int:
    facts = commerce()
    scope = _scope_expr() if scoped else None
    renewing_sql, renewing_params = facts.renewing_sql(
        start=as_of, end=as_of + timedelta(days=model.renewal_window_days), scope=scope
    )
    refunded_sql, refunded_params = facts.refunded_sql(
        since=as_of - timedelta(days=model.refund_days), scope=scope
    )
    every_week = " AND ".join(
        f"COALESCE(lv.stall_w{week}, 0) >= {model.stall_logins_per_week}"
        for week in range(1, model.stall_active_weeks + 1)
    )
    inner_params: list[Any] = [*renewing_params, *refunded_params]
    inner = f"""
        SELECT l.id AS learner_id, l.created_at AS created_at, l.signed_up_at AS signed_up_at,
          COALESCE(es.completion, 0.0) AS completion,
          CASE WHEN COALESCE(lv.assess_n, 0) > 0
               THEN CAST(lv.assess_sum * 1.0 / lv.assess_n / 100.0 AS DOUBLE PRECISION)
               ELSE 0.0 END AS assessment,
          {_capped("COALESCE(lv.community_n, 0)", model.community_cap)} AS community,
          {_capped("COALESCE(lv.downloads_n, 0)", model.downloads_cap)} AS downloads,
          {_login_sql(model, "lv")} AS login,
          CASE WHEN {every_week or "1 = 1"}
                AND COALESCE(lv.stall_silent_n, 0) = 0 THEN 1 ELSE 0 END AS stall,
          CASE WHEN lv.ticket_opened_at IS NOT NULL AND (lv.ticket_resolved_at IS NULL
                OR lv.ticket_resolved_at < lv.ticket_opened_at) THEN 1 ELSE 0 END AS open_ticket,
          CASE WHEN COALESCE(lv.payment_failed_n, 0) > 0 THEN 1 ELSE 0 END AS payment_failed,
          CASE WHEN COALESCE(lv.declined_n, 0) > 0 THEN 1 ELSE 0 END AS offer_declined,
          CASE WHEN rf.refunded_learner_id IS NOT NULL THEN 1 ELSE 0 END AS refund,
          CASE WHEN rn.renewing_learner_id IS NOT NULL THEN 1 ELSE 0 END AS renewing,
          CASE WHEN COALESCE(lv.activity_prior, 0) >= {model.decline_min_prior_events}
                AND COALESCE(lv.activity_recent, 0) * 3.0
                    < {float(model.decline_ratio)} * lv.activity_prior
               THEN 1 ELSE 0 END AS declining,
          es.since AS since,
          co.last_order_at AS last_order_at, co.orders AS orders, co.revenue AS revenue,
          lv.last_event_at AS last_event_at
        FROM learners_learner l
        LEFT JOIN scoring_lv lv ON lv.learner_id = l.id
        LEFT JOIN (
          SELECT learner_id,
            CAST(AVG(CAST(completion AS NUMERIC)) AS DOUBLE PRECISION) AS completion,
            MIN(enrolled_at) AS since
          FROM scoring_es GROUP BY learner_id
        ) es ON es.learner_id = l.id
        LEFT JOIN scoring_co co ON co.learner_id = l.id
        LEFT JOIN ({renewing_sql}) rn ON rn.renewing_learner_id = l.id
        LEFT JOIN ({refunded_sql}) rf ON rf.refunded_learner_id = l.id
        WHERE 1 = 1{_scope_filter("l.id", scoped)}
    """
    rfm_params: list[Any] = []
    last_bounds = [_ts(datetime.fromisoformat(v)) for v in thresholds.get("last_order_at", [])]
    r = _quintile_sql("f.last_order_at", last_bounds, rfm_params)
    fq = _quintile_sql("f.orders", thresholds.get("orders", []), rfm_params)
    m = _quintile_sql("f.revenue", thresholds.get("revenue", []), rfm_params)
    onboarding = as_of - timedelta(days=model.onboarding_days)
    growth = as_of - timedelta(days=model.growth_days)
    stage_params = [_ts(onboarding), _ts(growth)]
    stage = """(CASE WHEN f.declining = 1 OR f.stall = 1 THEN 'at_risk'
                     WHEN f.renewing = 1 THEN 'renewal'
                     WHEN COALESCE(f.signed_up_at, f.since, f.created_at) >= %s
                       THEN 'onboarding'
                     WHEN COALESCE(f.signed_up_at, f.since, f.created_at) >= %s THEN 'growth'
                     ELSE 'maturity' END)"""
    lps = _lps_sql(model)
    middle = f"""
        SELECT f.*, {r} AS r, {fq} AS fr, {m} AS m, {stage} AS stage,
          ROUND(CAST({lps} AS NUMERIC), 4) AS lps
        FROM ({inner}{_fence()}) f{_fence()}
    """
    segments = list(RfmSegment.objects.order_by("priority", "name"))
    segment_params: list[Any] = []
    whens = []
    for seg in segments:
        whens.append(
            f"WHEN g.r BETWEEN {seg.r_min} AND {seg.r_max} AND g.fr BETWEEN {seg.f_min} "
            f"AND {seg.f_max} AND g.m BETWEEN {seg.m_min} AND {seg.m_max} THEN %s"
        )
        segment_params.append(seg.name)
    rfm_segment = (
        f"(CASE WHEN g.r IS NULL THEN '' {' '.join(whens)} ELSE '' END)" if whens else "''"
    )
    columns = ", ".join(SCORE_COLUMNS)
    flags = ("stall", "open_ticket", "payment_failed", "offer_declined", "refund")
    select = f"""
        SELECT g.learner_id, CAST(%s AS INTEGER) AS model_version, g.lps,
          {_band_sql(model, "g.lps")} AS band, {columns},
          g.r AS rfm_recency, g.fr AS rfm_frequency, g.m AS rfm_monetary,
          CASE WHEN g.r IS NULL THEN ''
               ELSE CAST(g.r AS TEXT) || '-' || CAST(g.fr AS TEXT) || '-' || CAST(g.m AS TEXT)
          END AS rfm_cell,
          {rfm_segment} AS rfm_segment, g.stage AS stage,
          {", ".join(f"g.{f} = 1 AS flag_{f}" for f in flags)}, g.last_event_at AS last_event_at,
          %s AS computed_at
        FROM ({middle}) g
    """
    params = [
        model.version,
        *segment_params,
        _ts(as_of),
        *rfm_params,
        *stage_params,
        *inner_params,
    ]
    sql = _upsert(
        "learners_learnerscore",
        "learner_id",
        ("learner_id", *LEARNER_COMPARED[:-1], "rfm_cell", "last_event_at", "computed_at"),
        LEARNER_COMPARED,
        select,
        returning=("learner_id", "lps", "band", "stage"),
    )
    if connection.vendor != "postgresql":
        return _exec(sql, params)
    # The rows written are exactly those that changed: they, and only they, get a history
    # row for the day, in the same statement.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            {sql},
            history AS (
              INSERT INTO learners_scorehistory (learner_id, day, lps, band, stage)
              SELECT learner_id, %s, lps, band, stage FROM changed
              ON CONFLICT (learner_id, day) DO UPDATE SET
                lps = excluded.lps, band = excluded.band, stage = excluded.stage
            )
            SELECT COUNT(*) FROM changed
            """,
            [*params, as_of.astimezone(UTC).date()],
        )
        return cursor.fetchone()[0]


def _history(as_of: datetime, scoped: bool) -> None:
    """Today's history row for every scored learner whose values differ from it (SQLite)."""
    _exec(
        f"""
        INSERT INTO learners_scorehistory (learner_id, day, lps, band, stage)
        SELECT learner_id, %s, lps, band, stage FROM learners_learnerscore
        WHERE 1 = 1{_scope_filter("learner_id", scoped)}
        ON CONFLICT (learner_id, day) DO UPDATE SET
          lps = excluded.lps, band = excluded.band, stage = excluded.stage
        WHERE {_changed("learners_scorehistory", ("lps", "band", "stage"))}
        """,
        [as_of.astimezone(UTC).date()],
    )


def learner_explain(score: LearnerScore, model: ScoringModel | None = None) -> list[str]:
    """Plain-language reasons for a learner's score, for the admin and the API."""
    model = model or ScoringModel.objects.filter(version=score.model_version).first()
    if model is None:
        return []
    lines = []
    for name, weight in model.weights.items():
        part = getattr(score, name)
        lines.append(f"{name}: {part:.0%} × {weight} = {part * weight:.1f} points")
    return lines
