"""Would partitioning the events table by month pay? The same reads, partitioned and not.

    python bench/partitions.py --db growth_1000000_<pid>   # a database kept by bench/growth.py

Copies ``learners_event`` into ``bench_event_part``, partitioned by range of ``occurred_at``
(one partition a calendar month, the same two indexes as the product's table), and into
``bench_event_flat``, an unpartitioned copy built the same way (so that both are freshly
packed and analysed alike). Then times, warm, median of five runs each:

- the incremental pass's read: every event of 10,000 learners (the covering index by learner);
- the scheduled delta pass's read: the events of the last hour (the index by time);
- the events changelist: the first 100 newest, and the first 100 newest logins;
- a metric over a year: events per month and kind, over every event since a year ago;
- the full pass's read: every event, aggregated by learner.

Prints each time on both tables and partitioned / flat; last line
``ratio=<the worst partitioned / flat>``. Drops both copies.
"""

from __future__ import annotations

import argparse
import statistics
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg

COLUMNS = (
    "id, learner_id, kind, occurred_at, value, course_id, module_id, properties, "
    "idempotency_key, received_at"
)

QUERIES = {
    "incremental read (10,000 learners)": (
        "SELECT learner_id, kind, COUNT(*), MAX(occurred_at), SUM(value) FROM {t} "
        "WHERE learner_id = ANY(%(ids)s) GROUP BY learner_id, kind"
    ),
    "delta read (last hour)": (
        "SELECT learner_id, kind FROM {t} WHERE occurred_at >= now() - interval '1 hour'"
    ),
    "changelist first page": (f"SELECT {COLUMNS} FROM {{t}} ORDER BY occurred_at DESC LIMIT 100"),
    "changelist kind=login": (
        f"SELECT {COLUMNS} FROM {{t}} WHERE kind = 'login' ORDER BY occurred_at DESC LIMIT 100"
    ),
    "metric: a year by month and kind": (
        "SELECT date_trunc('month', occurred_at), kind, COUNT(*) FROM {t} "
        "WHERE occurred_at >= now() - interval '365 days' GROUP BY 1, 2"
    ),
    "full pass read (by learner)": (
        "SELECT learner_id, COUNT(*), MAX(occurred_at) FROM {t} GROUP BY learner_id"
    ),
}


def build(conn: psycopg.Connection) -> None:
    first, last = conn.execute(
        "SELECT date_trunc('month', MIN(occurred_at)), MAX(occurred_at) FROM learners_event"
    ).fetchone()
    for table in ("bench_event_part", "bench_event_flat"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(
        "CREATE TABLE bench_event_part (LIKE learners_event INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (occurred_at)"
    )
    month = first
    n = 0
    while month <= last:
        nxt = conn.execute("SELECT %s::timestamptz + interval '1 month'", [month]).fetchone()[0]
        conn.execute(
            f"CREATE TABLE bench_event_part_{n} PARTITION OF bench_event_part "
            "FOR VALUES FROM (%s) TO (%s)".replace("%s", "'{}'").format(month, nxt)
        )
        month, n = nxt, n + 1
    conn.execute("CREATE TABLE bench_event_flat (LIKE learners_event INCLUDING DEFAULTS)")
    for table in ("bench_event_part", "bench_event_flat"):
        started = time.perf_counter()
        conn.execute(f"INSERT INTO {table} SELECT * FROM learners_event")
        conn.execute(
            f"CREATE INDEX ON {table} (learner_id, kind, occurred_at) "
            "INCLUDE (course_id, module_id, value)"
        )
        conn.execute(f"CREATE INDEX ON {table} (occurred_at) INCLUDE (learner_id, kind)")
        conn.execute(f"VACUUM ANALYZE {table}")
        print(f"  built {table} in {time.perf_counter() - started:.1f} s", flush=True)
    print(f"  {n} monthly partitions", flush=True)


def timed(conn: psycopg.Connection, sql: str, params: dict) -> float:
    conn.execute(sql, params).fetchall()  # warm-up
    times = []
    for _ in range(5):
        started = time.perf_counter()
        conn.execute(sql, params).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    url = urlunsplit(urlsplit(args.pg)._replace(path=f"/{args.db}"))
    with psycopg.connect(url, autocommit=True) as conn:
        events = conn.execute("SELECT COUNT(*) FROM learners_event").fetchone()[0]
        print(f"{args.db}: {events:,} events", flush=True)
        build(conn)
        conn.execute("SET jit = off")
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM learners_learner ORDER BY hashint8(id) LIMIT 10000"
            ).fetchall()
        ]
        worst = 0.0
        print(f"\n{'query':<36}{'flat s':>10}{'partitioned s':>15}{'part/flat':>11}")
        try:
            for name, sql in QUERIES.items():
                flat = timed(conn, sql.format(t="bench_event_flat"), {"ids": ids})
                part = timed(conn, sql.format(t="bench_event_part"), {"ids": ids})
                worst = max(worst, part / flat)
                print(f"{name:<36}{flat:>10.4f}{part:>15.4f}{part / flat:>10.2f}×", flush=True)
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_event_part, bench_event_flat")
        print(f"ratio={worst:.3f}")


if __name__ == "__main__":
    main()
