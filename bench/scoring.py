"""Scoring at scale: a full pass against one hand-written LPS aggregate.

    python bench/scoring.py                    # 1,000,000 learners, 10,000,000 events
    python bench/scoring.py --learners 100000  # events scale with learners (10 each)

Builds a scratch PostgreSQL database (``--pg``): learners, 20 courses of 10 modules, 1.5
enrollments per learner, 10 events per learner (logins, module completions, assessments,
downloads, community posts, tickets, payment failures), one order per learner and some
subscriptions, plus five segments. Then, each in a fresh worker process whose peak memory is
read from the kernel:

1. a pass from scratch (LPS per enrollment and learner, RFM, stage, flags, history, segment
   refresh), twice: first (every score new) and steady state (scores exist);
2. one hand-written SQL statement computing the same LPS, checked against the pass's values,
   run twice: as written (server defaults) and with the pass's planner settings;
3. an hour later: an hour's worth of new events (events / 120 days / 24 h) through the
   ingestion path, then the scheduled pass over everyone (``score_scheduled``: a delta pass)
   at the previous pass's time + 1 hour, so that every window has moved by an hour;
4. 10,000 new events through the ingestion path, then the incremental pass as the scoring
   worker runs it (``score_dirty_learners``: on PostgreSQL, ``SCORING_PARALLELISM`` passes
   at once over disjoint shards of the dirty learners).

Prints the figures and, last, ``ratio=<scheduled hourly pass / the faster hand-written run>``;
the ratio of the pass from scratch is printed just before it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent

HAND_WRITTEN_LPS = """
CREATE TABLE bench_hand_lps AS
WITH ev AS (
  SELECT learner_id, course_id,
    COUNT(DISTINCT module_id) FILTER (WHERE kind = 'module_completed') AS done,
    SUM(value) FILTER (WHERE kind = 'assessment_submitted') AS s,
    COUNT(value) FILTER (WHERE kind = 'assessment_submitted') AS n,
    COUNT(*) FILTER (WHERE kind IN ('community_post', 'community_question')
                     AND occurred_at >= %(window)s) AS c,
    COUNT(*) FILTER (WHERE kind = 'resource_downloaded' AND occurred_at >= %(window)s) AS d,
    COUNT(*) FILTER (WHERE kind = 'login' AND occurred_at >= %(window)s) AS lg,
    COUNT(*) FILTER (WHERE kind = 'login' AND occurred_at >= %(recent)s) AS lr,
    COUNT(*) FILTER (WHERE kind = 'login' AND occurred_at >= %(lapsed)s) AS ll
  FROM learners_event WHERE occurred_at <= %(as_of)s
  GROUP BY learner_id, course_id
), lv AS (
  SELECT learner_id, SUM(s) AS s, SUM(n) AS n, SUM(c) AS c, SUM(d) AS d, SUM(lg) AS lg,
         SUM(lr) AS lr, SUM(ll) AS ll
  FROM ev GROUP BY learner_id
), mc AS (
  SELECT course_id, COUNT(*) AS n FROM learners_module GROUP BY course_id
), comp AS (
  SELECT en.learner_id, AVG(
    CASE WHEN en.completed_at IS NOT NULL AND en.completed_at <= %(as_of)s THEN 1.0
         WHEN mc.n > 0 THEN LEAST(COALESCE(ev.done, 0)::float8 / mc.n, 1.0)
         ELSE en.progress / 100.0 END) AS completion
  FROM learners_enrollment en
  LEFT JOIN ev ON ev.learner_id = en.learner_id AND ev.course_id = en.course_id
  LEFT JOIN mc ON mc.course_id = en.course_id
  WHERE en.enrolled_at <= %(as_of)s
  GROUP BY en.learner_id
)
SELECT l.id AS learner_id, ROUND((
    40 * COALESCE(comp.completion, 0)
  + 25 * (CASE WHEN lv.n > 0 THEN lv.s / lv.n / 100.0 ELSE 0 END)
  + 15 * LEAST(COALESCE(lv.c, 0) / 5.0, 1.0)
  + 10 * LEAST(COALESCE(lv.d, 0) / 5.0, 1.0)
  + 10 * (0.5 * (CASE WHEN lv.lr > 0 THEN 1.0 WHEN lv.ll > 0 THEN 0.5 ELSE 0.0 END)
          + 0.5 * LEAST(COALESCE(lv.lg, 0) / 12.0, 1.0)))::numeric, 4) AS lps
FROM learners_learner l
LEFT JOIN lv ON lv.learner_id = l.id
LEFT JOIN comp ON comp.learner_id = l.id
"""

WORKER_FULL = """
import json, time
from django.utils import timezone
from learners.scoring import score_learners
as_of = timezone.now()
started = time.perf_counter()
result = score_learners(full=True, as_of=as_of)
print(json.dumps({"seconds": time.perf_counter() - started, "learners": result.learners,
                  "timings": result.timings, "as_of": as_of.isoformat()}))
"""

WORKER_HAND = """
import json, time
from datetime import timedelta
from django.db import connection, transaction
from datetime import datetime
as_of = datetime.fromisoformat(AS_OF)
params = {"as_of": as_of, "window": as_of - timedelta(days=30),
          "recent": as_of - timedelta(days=7), "lapsed": as_of - timedelta(days=30)}
sql = open(SQL_PATH).read()
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE IF EXISTS bench_hand_lps")
    started = time.perf_counter()
    with transaction.atomic():
        if TUNED:
            # The planner settings the product's full pass uses (learners.scoring).
            from learners.scoring import planner_settings
            planner_settings(full=True)
        cursor.execute(sql, params)
    seconds = time.perf_counter() - started
    cursor.execute(
        "SELECT COUNT(*) FROM bench_hand_lps h JOIN learners_learnerscore s "
        "USING (learner_id) WHERE ABS(h.lps - s.lps) > 0.001")
    mismatches = cursor.fetchone()[0]
    cursor.execute("SELECT COUNT(*) FROM bench_hand_lps")
    rows = cursor.fetchone()[0]
print(json.dumps({"seconds": seconds, "mismatches": mismatches, "rows": rows}))
"""

WORKER_HOURLY = """
import json, random, time
from datetime import datetime, timedelta
from django.utils import timezone
from learners.ingest import events_ingest
from learners.scoring import score_scheduled
rng = random.Random(7)
now = timezone.now()
items = [{"idempotency_key": f"hour-{n}", "learner": f"b-{rng.randrange(1, LEARNERS + 1)}",
          "kind": rng.choice(["login", "resource_downloaded", "feature_used", "payment_failed"]),
          "occurred_at": (now - timedelta(seconds=rng.randrange(3600))).isoformat()}
         for n in range(EVENTS)]
for start in range(0, len(items), 1000):
    result = events_ingest(items=items[start:start + 1000])
    assert result.accepted == len(items[start:start + 1000]), result.errors[:3]
as_of = datetime.fromisoformat(AS_OF) + timedelta(hours=1)
started = time.perf_counter()
result = score_scheduled(as_of=as_of)
print(json.dumps({"seconds": time.perf_counter() - started, "kind": result.run.kind,
                  "learners": result.learners, "changed": result.run.changed,
                  "timings": result.timings}))
"""

WORKER_VERIFY = """
import json, time
from datetime import datetime, timedelta
from learners.scoring import score_learners
as_of = datetime.fromisoformat(AS_OF) + timedelta(hours=1)
started = time.perf_counter()
result = score_learners(full=True, as_of=as_of)
print(json.dumps({"seconds": time.perf_counter() - started, "changed": result.run.changed}))
"""

WORKER_INCREMENTAL = """
import json, random, time
from datetime import timedelta
from django.utils import timezone
from learners.ingest import events_ingest
from learners.scoring import score_dirty_learners
rng = random.Random(11)
now = timezone.now()
items = [{"idempotency_key": f"incr-{n}", "learner": f"b-{rng.randrange(1, LEARNERS + 1)}",
          "kind": rng.choice(["login", "resource_downloaded", "assessment_submitted"]),
          "occurred_at": (now - timedelta(minutes=rng.randrange(600))).isoformat()}
         for n in range(10_000)]
for item in items:
    if item["kind"] == "assessment_submitted":
        item["value"] = 75.0
started = time.perf_counter()
for start in range(0, len(items), 1000):
    result = events_ingest(items=items[start:start + 1000])
    assert result.accepted == 1000, result.errors[:3]
ingest_seconds = time.perf_counter() - started
started = time.perf_counter()
scored = score_dirty_learners(as_of=timezone.now())  # what the scoring worker runs
print(json.dumps({"ingest_seconds": ingest_seconds, "seconds": time.perf_counter() - started,
                  "learners": scored.learners,
                  "passes": [p.learners for p in scored.passes],
                  "timings": [p.timings for p in scored.passes]}))
"""


def run_worker(code: str, env: dict[str, str]) -> tuple[dict, float]:
    """Run ``code`` in a fresh Django process; return its JSON output and peak RSS in MB."""
    import json

    prelude = "import django; django.setup()\n"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far; a fresh maximum is this child's.
    return json.loads(proc.stdout.strip().splitlines()[-1]), max(peak, before) / 1024


def populate(conn: psycopg.Connection, learners: int) -> None:
    events = learners * 10
    t = time.perf_counter()
    conn.execute(
        """
        INSERT INTO learners_learner (external_id, email, name, time_zone, locale,
          marketing_opt_in, attributes, role, created_at, updated_at)
        SELECT 'b-' || g, 'b' || g || '@example.org', '', 'UTC', 'en', g %% 10 <> 0,
          jsonb_build_object('plan', CASE WHEN g %% 3 = 0 THEN 'pro' ELSE 'free' END),
          'member', now() - (g %% 700) * interval '1 day', now()
        FROM generate_series(1, %s) g
        """,
        [learners],
    )
    conn.execute(
        """
        INSERT INTO learners_course (external_id, title, learning_path, url, created_at,
          updated_at)
        SELECT 'c-' || g, 'Course ' || g, '', '', now(), now() FROM generate_series(0, 19) g
        """
    )
    conn.execute(
        """
        INSERT INTO learners_module (course_id, external_id, title, position, is_final)
        SELECT c.id, 'm' || p, '', p, p = 10
        FROM learners_course c, generate_series(1, 10) p
        """
    )
    first_learner = conn.execute("SELECT MIN(id) FROM learners_learner").fetchone()[0]
    first_course = conn.execute("SELECT MIN(id) FROM learners_course").fetchone()[0]
    first_module = conn.execute("SELECT MIN(id) FROM learners_module").fetchone()[0]
    conn.execute(
        """
        INSERT INTO learners_enrollment (learner_id, course_id, enrolled_at, completed_at,
          progress, updated_at)
        SELECT l.id, %(c0)s + (l.id %% 20), now() - ((l.id %% 400) + 1) * interval '1 day',
          CASE WHEN l.id %% 9 = 0 THEN now() - interval '12 hours' END, 0, now()
        FROM learners_learner l
        UNION ALL
        SELECT l.id, %(c0)s + ((l.id + 7) %% 20), now() - ((l.id %% 300) + 1) * interval '1 day',
          NULL, 0, now()
        FROM learners_learner l WHERE l.id %% 2 = 0
        """,
        {"c0": first_course},
    )
    print(f"  learners, courses, enrollments: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    # Events are generated in the database, 1,000,000 at a time, with the table's indexes and
    # foreign-key triggers off; they are rebuilt afterwards (test data, not a product path).
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'learners_event' "
        "AND indexname NOT LIKE '%%pkey'"
    ).fetchall()
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'learners_event'::regclass AND contype = 'u'"
    ).fetchall()
    for name, _ in constraints:
        conn.execute(f'ALTER TABLE learners_event DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    conn.execute("ALTER TABLE learners_event DISABLE TRIGGER ALL")
    conn.commit()
    for start in range(0, events, 1_000_000):
        conn.execute(
            """
            INSERT INTO learners_event (learner_id, kind, occurred_at, value, course_id,
              module_id, properties, idempotency_key, received_at)
            SELECT x.learner_id, x.kind, now() - (x.r * 120) * interval '1 day',
              CASE WHEN x.kind = 'assessment_submitted' THEN round((40 + x.r * 60)::numeric, 1)
              END,
              CASE WHEN x.kind IN ('module_completed', 'assessment_submitted',
                                   'resource_downloaded', 'community_post') THEN x.course_id END,
              CASE WHEN x.kind = 'module_completed' THEN
                %(m0)s + (x.course_id - %(c0)s) * 10 + (x.g %% 10) END,
              '{}'::jsonb, 'bench-' || x.g, now()
            FROM (
              SELECT g, %(l0)s + (hashint4(g) & 2147483647) %% %(learners)s AS learner_id,
                %(c0)s + (((hashint4(g) & 2147483647) %% %(learners)s + %(l0)s) %% 20) AS course_id,
                random() AS r,
                (ARRAY['login','login','login','login','module_completed','module_completed',
                       'assessment_submitted','resource_downloaded','community_post',
                       'lesson_bookmarked','login','module_completed','assessment_submitted',
                       'support_ticket_opened','support_ticket_resolved','payment_failed',
                       'offer_declined','feature_used','login','resource_downloaded']
                )[1 + (g %% 20)] AS kind
              FROM generate_series(%(start)s, %(stop)s) g
            ) x
            """,
            {
                "m0": first_module,
                "c0": first_course,
                "l0": first_learner,
                "learners": learners,
                "start": start + 1,
                "stop": min(start + 1_000_000, events),
            },
        )
        conn.commit()
        print(f"  events: {min(start + 1_000_000, events):,}", flush=True)
    conn.execute("ALTER TABLE learners_event ENABLE TRIGGER ALL")
    for name, definition in constraints:
        conn.execute(f'ALTER TABLE learners_event ADD CONSTRAINT "{name}" {definition}')
    constrained = {name for name, _ in constraints}
    for name, definition in indexes:
        if name not in constrained:
            conn.execute(definition)
    conn.commit()
    print(f"  events (with index rebuild): {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    conn.execute(
        """
        INSERT INTO expansion_product (sku, name, kind, price, currency, unit_cost, is_active,
          created_at, updated_at)
        VALUES ('B-COURSE', 'Course', 'course', 99, 'USD', 10, true, now(), now())
        """
    )
    conn.execute(
        """
        INSERT INTO expansion_order (external_id, learner_id, placed_at, currency, created_at,
          updated_at)
        SELECT 'o-' || l.id, l.id,
          now() - ((hashint4(l.id::int) & 2147483647) % 500) * interval '1 day', 'USD', now(), now()
        FROM learners_learner l
        """
    )
    conn.execute(
        """
        INSERT INTO expansion_orderline (order_id, external_id, product_id, quantity,
          unit_price, refunded_amount)
        SELECT o.id, '1', p.id, 1 + (o.id % 3), 20 + (o.id % 200), 0
        FROM expansion_order o, expansion_product p
        """
    )
    conn.execute(
        """
        INSERT INTO expansion_subscription (external_id, learner_id, plan_id, mrr, status,
          started_at, renews_at, updated_at)
        SELECT 's-' || l.id, l.id, p.id, 39, 'active', now() - interval '300 days',
          now() + ((l.id % 365) + 1) * interval '1 day', now()
        FROM learners_learner l, expansion_product p WHERE l.id % 20 = 0
        """
    )
    conn.commit()
    print(f"  orders, subscriptions: {time.perf_counter() - t:.1f} s", flush=True)
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")


SEGMENTS = [
    (
        "Expansion-ready",
        {"all": [{"field": "band", "op": "in", "value": ["high"]}, {"field": "reachable"}]},
    ),
    ("At risk", {"field": "stage", "op": "in", "value": ["at_risk"]}),
    (
        "Active this week",
        {"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 2},
    ),
    ("Champions", {"field": "rfm_segment", "op": "in", "value": ["Champions"]}),
    (
        "Pro plan, mid band",
        {
            "all": [
                {"field": "attribute", "key": "plan", "op": "eq", "value": "pro"},
                {"field": "band", "op": "in", "value": ["mid"]},
            ]
        },
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()

    db_name = f"expansion_scoring_{os.getpid()}"
    db_url = urlunsplit(urlsplit(args.pg)._replace(path=f"/{db_name}"))
    env = os.environ | {
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "expansion.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
        settings = conn.execute(
            "SELECT string_agg(name || '=' || current_setting(name), ', ') FROM pg_settings "
            "WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers')"
        ).fetchone()[0]
        print(f"PostgreSQL {conn.info.server_version}: {settings}", flush=True)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        print(f"populating {args.learners:,} learners, {args.learners * 10:,} events …", flush=True)
        with psycopg.connect(db_url) as conn:
            populate(conn, args.learners)
        segments = "\n".join(
            f"Segment.objects.create(name={name!r}, definition={definition!r})"
            for name, definition in SEGMENTS
        )
        run_worker("from learners.models import Segment\n" + segments + "\nprint('{}')", env)

        cold, cold_mb = run_worker(WORKER_FULL, env)
        print(
            f"first full pass (every score new): {cold['seconds']:.2f} s for "
            f"{cold['learners']:,} learners; worker peak {cold_mb:.0f} MB; steps {cold['timings']}",
            flush=True,
        )
        full, full_mb = run_worker(WORKER_FULL, env)
        print(
            f"full pass (steady state, the hourly one): {full['seconds']:.2f} s for "
            f"{full['learners']:,} learners; worker peak {full_mb:.0f} MB; steps {full['timings']}",
            flush=True,
        )
        sql_path = Path("/tmp") / f"{db_name}.sql"
        sql_path.write_text(HAND_WRITTEN_LPS)
        hands = {}
        for tuned in (False, True):
            hands[tuned], _ = run_worker(
                f"SQL_PATH = {str(sql_path)!r}\nAS_OF = {full['as_of']!r}\nTUNED = {tuned}\n"
                + WORKER_HAND,
                env,
            )
            label = "with the pass's planner settings" if tuned else "as written, defaults"
            print(
                f"hand-written LPS aggregate ({label}): {hands[tuned]['seconds']:.2f} s for "
                f"{hands[tuned]['rows']:,} rows; learners whose LPS differs from the pass: "
                f"{hands[tuned]['mismatches']}",
                flush=True,
            )
        # The baseline is the faster of the two: the ratio does not profit from a plan the
        # hand-written query could have had too.
        hand = min(hands.values(), key=lambda h: h["seconds"])
        hour_events = args.learners * 10 // (120 * 24)
        hourly, hourly_mb = run_worker(
            f"LEARNERS = {args.learners}\nEVENTS = {hour_events}\nAS_OF = {full['as_of']!r}\n"
            + WORKER_HOURLY,
            env,
        )
        if hourly["kind"] != "delta":
            raise SystemExit(f"FAILED: the scheduled pass was {hourly['kind']}, not delta")
        print(
            f"scheduled pass an hour later (delta), after {hour_events:,} new events: "
            f"{hourly['seconds']:.2f} s, {hourly['learners']:,} learners rescored, "
            f"{hourly['changed']:,} changed; worker peak {hourly_mb:.0f} MB; "
            f"steps {hourly['timings']}",
            flush=True,
        )
        # The delta pass must have left what a pass from scratch at the same moment leaves.
        verify, _ = run_worker(f"AS_OF = {full['as_of']!r}\n" + WORKER_VERIFY, env)
        print(
            f"pass from scratch at the same moment, to check the delta: {verify['seconds']:.2f} s, "
            f"learners whose scores it changed: {verify['changed']}",
            flush=True,
        )
        if verify["changed"]:
            raise SystemExit("FAILED: the delta pass and a pass from scratch disagree")
        incr, incr_mb = run_worker(f"LEARNERS = {args.learners}\n" + WORKER_INCREMENTAL, env)
        print(
            f"incremental: 10,000 new events ingested in {incr['ingest_seconds']:.2f} s, then a "
            f"pass over {incr['learners']:,} learners in {incr['seconds']:.2f} s "
            f"({len(incr['passes'])} at once: {incr['passes']} learners); worker peak "
            f"{incr_mb:.0f} MB; steps {incr['timings']}",
            flush=True,
        )
        if any(h["mismatches"] for h in hands.values()):
            raise SystemExit("FAILED: the pass and the hand-written SQL disagree")
        print(f"pass from scratch / hand-written: {full['seconds'] / hand['seconds']:.3f}")
        print(f"ratio={hourly['seconds'] / hand['seconds']:.3f}")
    finally:
        if args.keep:
            print(f"kept database {db_name}")
        else:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
