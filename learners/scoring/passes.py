"""Scoring passes: full, delta and incremental, and parallel incremental passes over shards.

One pass is a handful of statements, whatever the number of learners:

1. claim the scope (incremental: learners marked dirty by ingestion; delta: those plus
   everyone time moved across a window's edge; full: everyone) — ``scope.py``;
2. one scan of the events in scope, grouped by (learner, course), into a temporary table, and
   its roll-up per learner — ``scan.py``;
3. upsert enrollment scores (``lps.py``), then learner scores: LPS, RFM, stage, flags and the
   day's history row in one statement — ``learner_upsert.py``;
4. refresh segment membership for the scope (``learners.segments``).

Timestamps are compared with parameters computed in Python, and the pieces that touch orders
and subscriptions come from the commerce app (``learners.commerce``). All windows end at
``as_of`` (default: now), so history can be scored as of any date.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from expansion.core.db.locks import AdvisoryLock

from ..models import (
    DirtyLearner,
    EnrollmentScore,
    Learner,
    LearnerScore,
    ScoringModel,
    ScoringRun,
    Segment,
    SegmentMembership,
)
from ..segments import segments_refresh
from .learner_upsert import learner_scores
from .lps import enrollment_scores
from .rfm import has_bounds, order_totals, rfm_map_cells, rfm_thresholds
from .scan import events_table, learner_rollup
from .scope import claim_scope, delta_scope
from .sql import analyze, drop_temp_tables, execute
from .versions import scoring_model_active

INCREMENTAL_BATCH = 50_000
# Full and delta passes take turns (expansion.core.db.locks).
PASS_LOCK = int(AdvisoryLock.SCORING_PASS)


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


def scoring_fingerprint(model: ScoringModel) -> str:
    """What a delta pass must share with the pass before it: the model and the RFM map."""
    return hashlib.sha256(repr((model.version, rfm_map_cells())).encode()).hexdigest()[:32]


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

    The incremental pass as the scoring worker runs it. When there are enough dirty learners
    (``SCORING_PARALLEL_MIN_LEARNERS`` per share), a round runs ``SCORING_PARALLELISM``
    incremental passes at once, each on its own connection and its own shard of learners (id
    modulo the number of passes): the statements of one pass are CPU-bound row processing in
    a single PostgreSQL backend, and temporary tables rule out PostgreSQL's own parallel
    query (bench/scoring.py: 10,000 learners, ~1.8 s in one pass). Shards never share a
    learner, so the passes write disjoint rows; they meet only on the segment rows, which
    each locks in one order. Same scores as one pass (tests).
    """
    parallelism = parallelism or settings.SCORING_PARALLELISM
    outcome = DirtyPassResult()
    for _ in range(max_rounds):
        ways = 1
        if parallelism > 1:
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
    inputs can have changed in between (see ``delta_scope``). Otherwise up to ``limit``
    learners marked dirty are claimed and scored (others wait for the next pass); with
    ``shard=(k, n)`` only learners whose id is k modulo n (``score_dirty_learners`` runs n
    such passes at once).
    Idempotent: scoring the same data twice stores the same values. Concurrent incremental
    passes claim disjoint learners (``SKIP LOCKED``); full and delta passes take turns (an
    advisory lock).
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
        drop_temp_tables()
        scoped = not full
        count = 0
        if kind != "incremental":
            execute("SELECT pg_advisory_xact_lock(%s)", [PASS_LOCK])
        planner_settings(full=full)
        if scoped:
            if since is not None:
                count = delta_scope(model, since, as_of)
            else:
                count = claim_scope(limit, shard=shard)
            timer.lap("scope")
            # An empty delta pass still refreshes the segments and records its time.
            if count == 0 and since is None:
                drop_temp_tables()
                run.finished_at = timezone.now()
                run.timings = timer.timings
                return PassResult(run=run, learners=0, timings=timer.timings)
        events_table(model, as_of, scoped)
        timer.lap("events_scan")
        learner_rollup(model)
        timer.lap("rollup")
        enrollment_scores(model, as_of, scoped)
        timer.lap("enrollment_scores")
        # Incremental passes reuse the last full pass's quintile bounds, so they only need
        # their own learners' totals; without such bounds yet, everyone's are needed.
        bounds = has_bounds()
        order_totals(scoped=scoped and bounds)
        timer.lap("order_totals")
        thresholds = rfm_thresholds(fresh=full)
        timer.lap("rfm_thresholds")
        changed = learner_scores(model, as_of, scoped, thresholds)  # with the history rows
        learners = count if scoped else Learner.objects.count()
        timer.lap("learner_scores")
        if full:
            # Fresh statistics before the segment queries plan against these tables: with
            # stale ones PostgreSQL once chose an O(n²) anti-join (1.1 s for 4,667 members).
            analyze(LearnerScore._meta.db_table, EnrollmentScore._meta.db_table)
        # The step's old name (history rows had a statement of their own); the ANALYZE above.
        timer.lap("history")
        # Segments can hold conditions on time windows (event counts, last event's age), so a
        # delta pass refreshes all of them.
        segments_refresh(as_of=as_of, scoped=kind == "incremental")
        if full:
            analyze(SegmentMembership._meta.db_table)
        timer.lap("segments")
        drop_temp_tables()
        run.learners = learners
        run.changed = changed
        run.rfm_thresholds = thresholds
        run.finished_at = timezone.now()
        run.timings = timer.timings
        run.save()
        timer.lap("finish")
    timer.lap("commit")
    return PassResult(run=run, learners=learners, timings=timer.timings)


def planner_settings(*, full: bool) -> None:
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
    execute(f"SET LOCAL work_mem = '{int(settings.SCORING_WORK_MEM_MB)}MB'")
    # Scores are derived data: a pass whose commit a crash loses is simply redone (its
    # dirty-learner claims are lost with it), so it need not wait for the WAL flush.
    execute("SET LOCAL synchronous_commit = off")
    execute("SET LOCAL jit = off")
    if full:
        execute("SET LOCAL enable_indexscan = off")
    else:
        execute(f"SET LOCAL random_page_cost = {float(settings.SCORING_RANDOM_PAGE_COST):.2f}")
