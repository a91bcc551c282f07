"""Growth: how every pass and every admin list grows with the number of learners.

    python bench/growth.py                               # 100,000 and 1,000,000 learners
    python bench/growth.py --sizes 100000,1000000,3000000
    python bench/growth.py --sizes 1000000 --keep        # keep the database (partitioning)
    python bench/growth.py --reuse --repeat 3            # each size three times, interleaved
    python bench/growth.py --build-only                  # build growth_keep_<size> and stop
    python bench/growth.py --reuse                       # measure in copies of growth_keep_<size>

With ``--reuse`` (or ``--build-only``) each size's database is built once as
``growth_keep_<size>`` (2.5 min at 1,000,000 learners on a quiet machine, 17–36 min on a
loaded one), kept, and migrated on the next run; every measurement runs in a file copy of it
(``CREATE DATABASE … TEMPLATE``, 14 s at 1,000,000), dropped after unless ``--keep``.
Drop the kept databases by hand when done (``DROP DATABASE growth_keep_1000000``, 4.6 GB).

For each size, a scratch PostgreSQL database (``growth_<size>_<pid>``) built in the database
with bench/scoring.py's builder (learners, 20 courses × 10 modules, 1.5 enrollments and ten
events per learner over 120 days, one order per learner, subscriptions, five segments), plus
40 more products and two more lines on every order (the affinity refresh's baskets), one send
per learner over the last 400 days (the send list) and a superuser. Then, each in a fresh
worker process:

1. a scoring pass from scratch (``score_learners(full=True)``, every score new);
2. 10,000 new events through the ingestion path, then the incremental pass the scoring
   worker runs (``score_dirty_learners``);
3. a campaign evaluation of 10,000 candidates: one active final-module campaign (the starter
   template and offer of bench/dispatch.py) and 10,000 learners who completed a final module
   in the last hour (``send_within_hours = 1``, so the background's few final modules of the
   last hour join them);
4. the affinity refresh (``affinity_refresh``) over every order line, twice in a row (the
   second reported: the first in a fresh copy also sets hint bits; both printed);
5. the revenue metrics for a year, by month (``revenue_metrics``);
6. the admin changelists of learners, events and sends through Django's test client, logged
   in as a superuser: the first page, a search for one learner's external id, and one filter;
   each timed as the median of five requests after one warm-up, with its query count.

Prints a table (seconds; the last column is largest / smallest size) and, last,
``ratio=<the worst changelist's time at the largest size / at the smallest>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch import SETUP as CAMPAIGN_SETUP  # noqa: E402
from scoring import (  # noqa: E402
    SEGMENTS,
    WORKER_FULL,
    WORKER_INCREMENTAL,
    populate,
    run_worker,
)

ROOT = Path(__file__).resolve().parent.parent
KEPT_PREFIX = "growth_keep_"


def populate_growth(conn: psycopg.Connection, learners: int) -> None:
    """bench/scoring.py's data, plus baskets for the affinity refresh and one send a learner."""
    populate(conn, learners)
    conn.autocommit = False
    t = time.perf_counter()
    conn.execute(
        """
        INSERT INTO expansion_product (sku, name, kind, price, currency, unit_cost, is_active,
          created_at, updated_at)
        SELECT 'G-' || g, 'Product ' || g, 'course', 20 + g, 'USD', 5, true, now(), now()
        FROM generate_series(1, 40) g
        """
    )
    first_product = conn.execute(
        "SELECT MIN(id) FROM expansion_product WHERE sku LIKE 'G-%%'"
    ).fetchone()[0]
    # Two more lines per order, skewed towards the first products (so that pairs repeat).
    conn.execute(
        """
        INSERT INTO expansion_orderline (order_id, external_id, product_id, quantity,
          unit_price, refunded_amount)
        SELECT o.id, n::text, %(p0)s + ((hashint4(o.id::int * 7 + n) & 2147483647) %% 40)
          * ((hashint4(o.id::int * 13 + n) & 2147483647) %% 40) / 40, 1, 30, 0
        FROM expansion_order o, generate_series(2, 3) n
        """,
        {"p0": first_product},
    )
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE expansion_orderline")
    print(f"  baskets: {time.perf_counter() - t:.1f} s", flush=True)


SENDS = """
INSERT INTO campaigns_send
  (learner_id, campaign_id, occurrence_key, trigger, reason, rule, scheduled_for, channel,
   category, template_version_id, locale, to_email, subject, status, status_reason, attempts,
   is_test, message_id, provider_message_id, created_at, sent_at, clicks, dismiss_reason)
SELECT l.id, NULL, 'newsletter-' || l.id, '', '', '', now(), 'email', 'news',
  (SELECT MAX(id) FROM message_templates_messagetemplateversion), 'en', l.email, 'News',
  (ARRAY['sent', 'sent', 'sent', 'delivered', 'failed', 'suppressed'])[1 + l.id % 6],
  '', 1, false, '<news-' || l.id || '@bench>', '',
  now() - (hashint4(l.id::int) & 2147483647) % 400 * interval '1 day',
  now() - (hashint4(l.id::int) & 2147483647) % 400 * interval '1 day', 0, ''
FROM learners_learner l
"""

SETUP_ADMIN = """
from django.contrib.auth import get_user_model
get_user_model().objects.create_superuser("growth", "growth@example.org", "growth-bench-pw")
print("{}")
"""

# 10,000 learners spread over the ids complete a final module in the last hour. Ids ≡ 1
# modulo the step: the builder leaves every tenth learner (ids ≡ 0 modulo 10) without
# marketing consent, and until 2026-12-03 the candidates were exactly those, so the
# evaluation stopped all 10,000 as not reachable and queued nothing.
EVALUATION_EVENTS = """
INSERT INTO learners_event (learner_id, kind, occurred_at, value, course_id, module_id,
  properties, idempotency_key, received_at)
SELECT l.id, 'module_completed', now() - (l.id %% 50) * interval '1 minute', NULL, m.course_id,
  m.id, '{}'::jsonb, 'final-' || l.id, now()
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM learners_learner
      WHERE id %% %(step)s = 1 LIMIT 10000) l
JOIN LATERAL (SELECT id, course_id FROM learners_module WHERE is_final
              ORDER BY id OFFSET l.n %% 20 LIMIT 1) m ON true
"""

WORKER_EVALUATE = """
import json, time
from django.utils import timezone
from campaigns.evaluate import campaigns_evaluate
from campaigns.models import Campaign
# The builder's synthetic scores put most of the candidates under the campaign's LPS floor or
# at risk: lifted for this campaign, so that the evaluation queues most of its 10,000 (the
# other guardrails still stop some, each counted).
Campaign.objects.filter(name="Graduates: next course").update(
    send_within_hours=1, guardrails={"min_lps": 0, "suppress_at_risk": False}
)
started = time.perf_counter()
result = campaigns_evaluate(now=timezone.now())
print(json.dumps({"seconds": time.perf_counter() - started, "candidates": result.candidates,
                  "queued": result.queued, "stopped": dict(result.stopped),
                  "steps": {k: round(v, 3) for k, v in result.timings.items()}}))
"""

# Two refreshes in a row, as beat runs it hourly: the first in a fresh copy of the database
# also sets the rows' hint bits (the first read of a row since it was copied) and faults the
# process's arrays into memory; the second is the steady state the table reports. Both are
# printed.
WORKER_AFFINITY = """
import json, time
from expansion.commerce.affinity import affinity_refresh
started = time.perf_counter()
affinity_refresh()
first = time.perf_counter() - started
started = time.perf_counter()
result = affinity_refresh()
print(json.dumps({"seconds": time.perf_counter() - started, "first": first,
                  "pairs": result.pairs}))
"""

WORKER_METRICS = """
import json, time
from datetime import timedelta
from django.utils import timezone
from expansion.commerce.metrics import revenue_metrics
today = timezone.now().date()
started = time.perf_counter()
rows = revenue_metrics(period="month", first=today - timedelta(days=365), last=today)
print(json.dumps({"seconds": time.perf_counter() - started, "periods": len(rows),
                  "orders": sum(r.orders for r in rows)}))
"""

# Each list: the first page, a search for one learner's external id, one filter.
CHANGELISTS = [
    ("learners", "/admin/learners/learner/", "q=b-4242", "marketing_opt_in__exact=1"),
    ("events", "/admin/learners/event/", "q=b-4242", "kind__exact=login"),
    ("sends", "/admin/campaigns/send/", "q=b-4242", "status__exact=sent"),
]

WORKER_CHANGELISTS = """
import json, statistics, time
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.contrib.auth import get_user_model
client = Client()
client.force_login(get_user_model().objects.get(username="growth"))
out = {}
for name, url, search, filtered in LISTS:
    for label, query in (("page", ""), ("search", search), ("filter", filtered)):
        target = url + ("?" + query if query else "")
        client.get(target)  # warm-up
        times = []
        for _ in range(5):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(target)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (target, response.status_code)
        rows = response.content.count(b'name="_selected_action"')
        out[f"{name} {label}"] = {
            "seconds": statistics.median(times), "queries": len(queries), "rows": rows,
            "slowest_sql": max((float(q["time"]), q["sql"][:160])
                               for q in queries.captured_queries),
        }
print(json.dumps(out))
"""


def django_env(db_url: str) -> dict[str, str]:
    env = os.environ | {
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "expansion.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_REPLICA_URL", None)
    return env


def database_url(pg: str, db_name: str) -> str:
    return urlunsplit(urlsplit(pg)._replace(path=f"/{db_name}"))


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def build(size: int, pg: str, db_name: str) -> None:
    """Create ``db_name`` and fill it with ``size`` learners and everything the passes read."""
    db_url = database_url(pg, db_name)
    env = django_env(db_url)
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    started = time.perf_counter()
    migrate(env)
    print(f"[{size:,}] populating {size:,} learners, {size * 10:,} events …", flush=True)
    with psycopg.connect(db_url) as conn:
        populate_growth(conn, size)
    segments = "\n".join(
        f"Segment.objects.create(name={name!r}, definition={definition!r})"
        for name, definition in SEGMENTS
    )
    run_worker("from learners.models import Segment\n" + segments + "\nprint('{}')", env)
    run_worker(SETUP_ADMIN, env)
    run_worker(CAMPAIGN_SETUP, env)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(SENDS)
        conn.execute("VACUUM ANALYZE campaigns_send")
    print(f"[{size:,}] built {db_name} in {time.perf_counter() - started:.0f} s", flush=True)


def database_exists(pg: str, db_name: str) -> bool:
    with psycopg.connect(pg, autocommit=True) as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        )


def kept_database(size: int, pg: str) -> str:
    """``growth_keep_<size>``, built if missing, migrated if there: never measured in itself.

    Each measurement runs in a copy (the passes write scores, events and sends, so a second
    run in the same database would measure something else); the copy is a file copy of the
    kept one, about a minute at 1,000,000 learners instead of the 17–36 min of a build.
    """
    db_name = f"{KEPT_PREFIX}{size}"
    if database_exists(pg, db_name):
        started = time.perf_counter()
        migrate(django_env(database_url(pg, db_name)))
        print(f"[{size:,}] reusing {db_name} (migrated in {time.perf_counter() - started:.0f} s)")
    else:
        build(size, pg, db_name)
    return db_name


def measure(size: int, pg: str, keep: bool, reuse: bool) -> dict[str, dict]:
    db_name = f"growth_{size}_{os.getpid()}"
    db_url = database_url(pg, db_name)
    env = django_env(db_url)
    figures: dict[str, dict] = {}
    if reuse:
        template = kept_database(size, pg)
        started = time.perf_counter()
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        print(f"[{size:,}] copied {template} in {time.perf_counter() - started:.0f} s")
    try:
        if not reuse:
            build(size, pg, db_name)

        full, _ = run_worker(WORKER_FULL, env)
        figures["scoring pass from scratch"] = full
        print(f"[{size:,}] full pass {full['seconds']:.2f} s", flush=True)
        incr, _ = run_worker(f"LEARNERS = {size}\n" + WORKER_INCREMENTAL, env)
        figures["incremental pass (10,000 events)"] = incr
        print(
            f"[{size:,}] incremental {incr['seconds']:.2f} s, {incr['learners']:,} learners in "
            f"{len(incr['passes'])} passes {incr['passes']}; steps {incr['timings']}",
            flush=True,
        )
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(EVALUATION_EVENTS, {"step": max(size // 10_000, 1)})
            conn.execute("ANALYZE learners_event")
        evaluation, _ = run_worker(WORKER_EVALUATE, env)
        figures["campaign evaluation (10,000 candidates)"] = evaluation
        print(
            f"[{size:,}] evaluation {evaluation['seconds']:.2f} s, "
            f"{evaluation['candidates']:,} candidates, {evaluation['queued']:,} queued, "
            f"stopped {evaluation['stopped']}; steps {evaluation.get('steps')}",
            flush=True,
        )
        affinity, _ = run_worker(WORKER_AFFINITY, env)
        figures["affinity refresh"] = affinity
        print(
            f"[{size:,}] affinity {affinity['seconds']:.2f} s (the first of two in a row "
            f"{affinity['first']:.2f} s), {affinity['pairs']} pairs"
        )
        metrics, _ = run_worker(WORKER_METRICS, env)
        figures["revenue metrics, a year by month"] = metrics
        print(f"[{size:,}] metrics {metrics['seconds']:.3f} s", flush=True)
        lists, _ = run_worker(f"LISTS = {CHANGELISTS!r}\n" + WORKER_CHANGELISTS, env)
        for name, figure in lists.items():
            figures[f"changelist: {name}"] = figure
            print(
                f"[{size:,}] changelist {name}: {figure['seconds'] * 1000:.1f} ms, "
                f"{figure['queries']} queries, {figure['rows']} rows; slowest SQL "
                f"{figure['slowest_sql'][0] * 1000:.1f} ms: {figure['slowest_sql'][1]}",
                flush=True,
            )
    finally:
        if keep:
            print(f"kept database {db_name}")
        else:
            with psycopg.connect(pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch databases.")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=f"Build {KEPT_PREFIX}<size> once (or migrate it if it exists), keep it, and "
        "measure in a copy of it.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Measure every size this many times, the sizes interleaved (small, large, small, "
        "…), each in a fresh copy; the table shows the median of each figure and every run's.",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help=f"Build (or migrate) {KEPT_PREFIX}<size> for each size and stop.",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.build_only:
        for size in sizes:
            kept_database(size, args.pg)
        return
    started = time.perf_counter()
    runs: dict[int, list[dict]] = {size: [] for size in sizes}
    for _ in range(args.repeat):
        for size in sizes:
            runs[size].append(measure(size, args.pg, args.keep, args.reuse))
    results = {
        size: {
            name: {"seconds": statistics.median(run[name]["seconds"] for run in measured)}
            for name in measured[0]
        }
        for size, measured in runs.items()
    }
    small, large = sizes[0], sizes[-1]
    names = list(results[small])
    if args.repeat > 1:
        print(f"\nevery run ({args.repeat} of each size, interleaved):")
        for name in names:
            cells = "; ".join(
                f"{size:,}: " + ", ".join(f"{run[name]['seconds']:.3f}" for run in runs[size])
                for size in sizes
            )
            print(f"  {name}: {cells}")
    width = max(len(n) for n in names)
    header = "".join(f"{size:>14,}" for size in sizes)
    label = "seconds" if args.repeat == 1 else f"seconds (median of {args.repeat})"
    width = max(width, len(label))
    print(f"\n{label:<{width}}{header}{f'{large // small}× size':>14}")
    for name in names:
        cells = "".join(f"{results[size][name]['seconds']:>14.3f}" for size in sizes)
        growth = results[large][name]["seconds"] / results[small][name]["seconds"]
        print(f"{name:<{width}}{cells}{growth:>13.2f}×")
    print(f"whole run: {time.perf_counter() - started:.0f} s")
    lists = [n for n in names if n.startswith("changelist")]
    worst = max(lists, key=lambda n: results[large][n]["seconds"] / results[small][n]["seconds"])
    slowest = max(results[large][n]["seconds"] for n in lists)
    print(f"slowest changelist at {large:,}: {slowest * 1000:.1f} ms (target < 300 ms)")
    print(f"worst changelist growth: {worst}")
    print(f"ratio={results[large][worst]['seconds'] / results[small][worst]['seconds']:.3f}")


if __name__ == "__main__":
    main()
