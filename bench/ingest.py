"""Event ingestion: the sync API against PostgreSQL's COPY.

Creates a scratch PostgreSQL database, migrates it, adds learners and an API key, starts
gunicorn on 127.0.0.1 and posts N events in batches of 1,000 from concurrent clients. Then it
replays every batch (which must add zero rows), empties the table and loads the same rows with
psycopg's COPY. Prints events/s for each and, last, ``ratio=<api/copy>``.

    python bench/ingest.py                      # 1,000,000 events
    python bench/ingest.py --events 100000      # a quicker run
    python bench/ingest.py --copy-batches       # also COPY in transactions of 1,000 rows

Needs PostgreSQL (``--pg``, default postgres://postgres@127.0.0.1:5432/postgres); the scratch
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
KINDS = [
    ("login", None, None),
    ("module_completed", None, None),
    ("assessment_submitted", "score", None),
    ("resource_downloaded", None, {"resource": "cheatsheet.pdf"}),
    ("lesson_bookmarked", None, None),
    ("feature_used", None, {"feature": "notes"}),
    ("usage_reported", None, {"metric": "api_calls", "used": 812, "limit": 1000}),
]


def make_events(count: int, learners: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for n in range(count):
        kind, value, props = KINDS[n % len(KINDS)]
        item = {
            "idempotency_key": f"bench-{n}",
            "learner": f"bench-{rng.randrange(learners)}",
            "kind": kind,
            "occurred_at": (start + timedelta(seconds=n * 3)).isoformat(),
        }
        if value:
            item["value"] = round(rng.uniform(30, 100), 1)
        if props:
            item["properties"] = props
        events.append(item)
    return events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port: int, key: str, bodies: list[bytes], start_at: float, out: mp.Queue) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    accepted = duplicates = errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    for body in bodies:
        for attempt in range(5):
            try:
                conn.request("POST", "/api/v1/events/bulk/", body=body, headers=headers)
                response = conn.getresponse()
                data = orjson.loads(response.read())
                break
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                if attempt == 4:
                    raise
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}: {str(data)[:300]}")
        accepted += data["accepted"]
        duplicates += len(data["duplicates"])
        errors += len(data["errors"])
    out.put((accepted, duplicates, errors))


def post_all(port: int, key: str, bodies: list[bytes], clients: int) -> tuple[float, tuple]:
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 0.5
    shares = [bodies[i::clients] for i in range(clients)]
    procs = [mp.Process(target=client, args=(port, key, s, start_at, out)) for s in shares]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a client failed with exit code {p.exitcode}")
    elapsed = time.time() - start_at
    totals = tuple(sum(r[i] for r in results) for i in range(3))
    return elapsed, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--copy-batches",
        action="store_true",
        help="also time COPY in transactions of 1,000 rows (information, not the baseline)",
    )
    args = parser.parse_args()

    db_name = f"expansion_bench_{os.getpid()}"
    admin_url = args.pg
    parts = urlsplit(admin_url)
    db_url = urlunsplit(parts._replace(path=f"/{db_name}"))
    env = os.environ | {
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "API_THROTTLE_RATE": "1000000/min",
        "LOG_LEVEL": "WARNING",
        # Production mode on loopback: plain HTTP, no provider webhooks (issue 18's refusals).
        "SECURE_SSL_REDIRECT": "0",
        "TRACKING_WEBHOOKS": "0",
    }
    python = sys.executable
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    server = None
    try:
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        with psycopg.connect(db_url, autocommit=True) as conn:
            with conn.cursor().copy(
                "COPY learners_learner (external_id, email, name, time_zone, locale, "
                "marketing_opt_in, attributes, role, created_at, updated_at) FROM STDIN"
            ) as copy:
                now = datetime.now(UTC)
                for n in range(args.learners):
                    copy.write_row(
                        (
                            f"bench-{n}",
                            f"b{n}@example.org",
                            "",
                            "UTC",
                            "en",
                            True,
                            "{}",
                            "member",
                            now,
                            now,
                        )
                    )
        key = subprocess.run(
            [python, "manage.py", "create_api_key", "bench", "--scope", "write", "--quiet"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

        print(f"generating {args.events:,} events for {args.learners:,} learners …", flush=True)
        events = make_events(args.events, args.learners)
        bodies = [
            orjson.dumps({"items": events[i : i + BATCH]}) for i in range(0, len(events), BATCH)
        ]

        port = free_port()
        server = subprocess.Popen(
            [
                python,
                "-m",
                "gunicorn",
                "expansion.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(args.threads),
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        api_seconds, (accepted, dupes, errors) = post_all(port, key, bodies, args.clients)
        api_rate = args.events / api_seconds
        print(
            f"api:    {args.events:,} events in {api_seconds:.2f} s = {api_rate:,.0f} events/s "
            f"({args.clients} clients, {args.workers}×{args.threads} gunicorn workers×threads); "
            f"accepted={accepted:,} duplicates={dupes:,} errors={errors:,}",
            flush=True,
        )
        replay_seconds, (r_accepted, r_dupes, r_errors) = post_all(port, key, bodies, args.clients)
        with psycopg.connect(db_url) as conn:
            stored = conn.execute("SELECT count(*) FROM learners_event").fetchone()[0]
        print(
            f"replay: {args.events:,} events in {replay_seconds:.2f} s = "
            f"{args.events / replay_seconds:,.0f} events/s; accepted={r_accepted:,} "
            f"duplicates={r_dupes:,} errors={r_errors:,}; rows stored={stored:,}",
            flush=True,
        )
        if accepted != args.events or r_accepted != 0 or stored != args.events or errors:
            raise SystemExit("FAILED: the API lost, refused or duplicated events")

        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        server = None

        with psycopg.connect(db_url) as conn:
            learner_ids = dict(conn.execute("SELECT external_id, id FROM learners_learner"))
            conn.execute("TRUNCATE learners_event")
            conn.commit()
            rows = [
                (
                    learner_ids[e["learner"]],
                    e["kind"],
                    datetime.fromisoformat(e["occurred_at"]),
                    e.get("value"),
                    None,
                    None,
                    orjson.dumps(e.get("properties") or {}).decode(),
                    e["idempotency_key"],
                    datetime.now(UTC),
                )
                for e in events
            ]
            # Two ways to feed COPY; the faster one is the baseline. write_row adapts each
            # Python row; the text block is formatted before the clock starts, so its figure
            # is the database's own loading speed.
            copy_sql = (
                "COPY learners_event (learner_id, kind, occurred_at, value, course_id, "
                "module_id, properties, idempotency_key, received_at) FROM STDIN"
            )
            started = time.perf_counter()
            with conn.cursor().copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            rows_seconds = time.perf_counter() - started
            copied = conn.execute("SELECT count(*) FROM learners_event").fetchone()[0]
            conn.execute("TRUNCATE learners_event")
            conn.commit()

            def text(value) -> str:
                if value is None:
                    return "\\N"
                if isinstance(value, datetime):
                    return value.isoformat()
                return str(value).replace("\\", "\\\\").replace("\t", "\\t")

            block = "".join("\t".join(map(text, row)) + "\n" for row in rows).encode()
            started = time.perf_counter()
            with conn.cursor().copy(copy_sql) as copy:
                for offset in range(0, len(block), 1 << 20):
                    copy.write(block[offset : offset + (1 << 20)])
            conn.commit()
            text_seconds = time.perf_counter() - started
            copied_text = conn.execute("SELECT count(*) FROM learners_event").fetchone()[0]
            batched_seconds = None
            if args.copy_batches:
                # What one transaction per 1,000 rows costs COPY itself (the foreign-key
                # row locks and the commit are per transaction): the floor of any API that
                # commits each request, shown beside the baseline, never used as it.
                conn.execute("TRUNCATE learners_event")
                conn.commit()
                started = time.perf_counter()
                for offset in range(0, len(rows), BATCH):
                    with conn.cursor().copy(copy_sql) as copy:
                        for row in rows[offset : offset + BATCH]:
                            copy.write_row(row)
                    conn.commit()
                batched_seconds = time.perf_counter() - started
        if copied != args.events or copied_text != args.events:
            raise SystemExit(f"FAILED: COPY loaded {copied:,} / {copied_text:,} rows")
        rows_rate, text_rate = args.events / rows_seconds, args.events / text_seconds
        copy_rate = max(rows_rate, text_rate)
        print(
            f"copy:   write_row {rows_rate:,.0f} rows/s ({rows_seconds:.2f} s); "
            f"pre-formatted text {text_rate:,.0f} rows/s ({text_seconds:.2f} s); "
            f"baseline {copy_rate:,.0f} rows/s",
            flush=True,
        )
        if batched_seconds is not None:
            print(
                f"copy in transactions of {BATCH:,} rows (write_row): "
                f"{args.events / batched_seconds:,.0f} rows/s ({batched_seconds:.2f} s), "
                f"{args.events / batched_seconds / copy_rate:.3f} of the baseline",
                flush=True,
            )
        print(f"ratio={api_rate / copy_rate:.3f}")
    finally:
        if server is not None:
            server.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
