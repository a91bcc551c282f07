"""Delivery: the product's workers against django-post_office and bare smtplib.

    python bench/delivery.py                  # 10,000 emails, three rounds
    python bench/delivery.py --emails 2000 --rounds 1    # a quick run

Builds a scratch PostgreSQL database with ten learners per email (bench/dispatch.py's
population: scored, reachable, at midday in their zone), one active campaign on the
final-module trigger with the starter "Course-completion cohort upsell" template and an offer,
and lets the product's evaluation queue ``--emails`` sends. Then, against one SMTP sink
(aiosmtpd on loopback, its own process, which records every Message-ID it accepts):

1. **the product**: two Celery workers (``--workers``), each with ``--concurrency`` (2)
   dispatchers (prefork children; post_office's counterpart is its 5 threads per process,
   ``--po-threads``; 1 = ``--pool=solo``), run the dispatch tasks the fan-out enqueues
   (``DISPATCH_PARALLELISM`` = workers × concurrency), from the fan-out until the sink has
   accepted every email;
2. **django-post_office** (bench dependency; ``bench/postoffice_settings.py``: BATCH_SIZE
   1000, 5 threads per process each reusing its SMTP connection, log only failures):
   the same messages — the product's own rendering of each send, text + HTML, the same
   headers — queued as post_office ``Email`` rows, sent by ``send_queued_mail_until_done``
   with ``--processes`` processes (2: one per core);
3. **bare smtplib**: the same messages serialised beforehand, ``sendmail`` over one
   connection (the sink's ceiling for one connection).

For each: emails/s (wall clock), CPU ms per email of the sending processes (the workers; post
office's process and its pool; the smtplib loop) and of the sink, and the UNIQUE Message-IDs
the sink accepted (plus duplicates). The product must have sent every email exactly once (its
Send rows all *sent*, every Message-ID at the sink once).

``--rounds`` (3) runs the three back to back that many times, the product's sends put back
in the queue between rounds (not timed): on a shared 2-core machine the speed of the hour
moves single figures by a third, and the rounds see the same hours. CPU is also counted for
PostgreSQL (every backend, including the ones that start and end in the phase) and the broker.

Last line: ``ratio=<product emails/s / post_office emails/s>``, the median over the rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch import (  # noqa: E402
    SETUP,
    celery_worker,
    django_run,
    free_port,
    midday_zone,
    populate,
)

ROOT = Path(__file__).resolve().parent.parent

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.I | re.M)


def sink_main(port: int, counter, pipe) -> None:  # runs in its own process
    """Accept everything; record each message's Message-ID. ``pipe``: "take" answers with the
    Message-IDs accepted since the last "take"."""
    import threading

    from aiosmtpd.controller import Controller

    ids: list[bytes] = []
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            content = envelope.content
            head = content[: content.find(b"\r\n\r\n")]
            match = _MESSAGE_ID.search(head)
            with lock:
                ids.append(match.group(1) if match else b"")
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        if pipe.recv() == "take":
            with lock:
                taken = ids[:]
                ids.clear()
            pipe.send(taken)


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class ServerCPU:
    """CPU spent by PostgreSQL (every backend and helper process, including backends that
    start and exit within the window) and by the broker, between ``start()`` and ``stop()``:
    a thread samples them every 50 ms and keeps each process's first and last reading."""

    NAMES = {"postgres": "database", "redis-server": "broker", "beam.smp": "broker"}

    def __init__(self) -> None:
        import threading

        self._seen: dict[int, tuple[str, float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, first: bool) -> None:
        for proc in psutil.process_iter(["name", "cpu_times"]):
            kind = self.NAMES.get(proc.info["name"] or "")
            times = proc.info["cpu_times"]
            if kind is None or times is None:
                continue
            used = times.user + times.system
            known = self._seen.get(proc.pid)
            start = known[1] if known else (used if first else 0.0)
            self._seen[proc.pid] = (kind, start, used)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample(first=False)

    def start(self) -> ServerCPU:
        self._sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        totals: dict[str, float] = {"database": 0.0, "broker": 0.0}
        for kind, start, last in self._seen.values():
            totals[kind] += last - start
        return totals


# The product's messages for the other two: each sent send rendered and built exactly as the
# dispatcher builds it (a fresh Message-ID each, so the sink counts them apart).
BUILD = """
import json, pickle
from django.utils import timezone
from campaigns.contexts import send_contexts
from campaigns.delivery import email_prepare
from campaigns.models import Send
sends = list(Send.objects.filter(status="sent", campaign__isnull=False).select_related(
    "learner", "learner__score", "offer", "offer__product", "course", "template_version"
).order_by("id"))
contexts = send_contexts(sends, timezone.now())
out = []
for send, context in zip(sends, contexts):
    prepared = email_prepare(send=send, context=context)
    message = prepared.message
    html = message.alternatives[0][0]
    out.append({"subject": message.subject, "text": message.body, "html": html,
                "from": message.from_email, "to": message.to[0],
                "headers": dict(message.extra_headers),
                "bytes": message.message().as_bytes(linesep="\\r\\n")})
with open(PATH, "wb") as fh:
    pickle.dump(out, fh)
print(json.dumps({"built": len(out), "bytes": sum(len(m["bytes"]) for m in out)}))
"""

# post_office: queue the messages as its Email rows (not timed), then send them all.
POST_OFFICE = """
import json, pickle, resource, time, uuid
from post_office.mail import send_queued_mail_until_done
from post_office.models import Email, STATUS
with open(PATH, "rb") as fh:
    messages = pickle.load(fh)
Email.objects.all().delete()
Email.objects.bulk_create([
    Email(from_email=m["from"], to=[m["to"]], subject=m["subject"], message=m["text"],
          html_message=m["html"], status=STATUS.queued, priority=2,
          headers={**m["headers"], "Message-ID": "<po-%s@bench>" % uuid.uuid4().hex})
    for m in messages
], batch_size=1000)
def used():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
cpu0, t0 = used(), time.time()
send_queued_mail_until_done(processes=PROCESSES, log_level=1)
seconds = time.time() - t0
print(json.dumps({"seconds": seconds, "started": t0, "cpu": used() - cpu0,
                  "sent": Email.objects.filter(status=STATUS.sent).count(),
                  "failed": Email.objects.filter(status=STATUS.failed).count()}))
"""


def bare_smtplib(path: str, port: int) -> dict:
    import smtplib

    with open(path, "rb") as fh:
        messages = pickle.load(fh)
    wire = []
    for number, m in enumerate(messages):
        data = m["bytes"].replace(m["headers"]["Message-ID"].encode(), b"<bare-%d@bench>" % number)
        wire.append((m["from"], [m["to"]], data))
    cpu0, t0 = time.process_time(), time.time()
    smtp = smtplib.SMTP("127.0.0.1", port)
    for sender, to, data in wire:
        smtp.sendmail(sender, to, data)
    smtp.quit()
    return {"seconds": time.time() - t0, "cpu": time.process_time() - cpu0}


def wait_for(counter, target: int, timeout: float) -> float:
    """Until the sink has accepted ``target`` emails; returns when it reached that count."""
    deadline = time.time() + timeout
    while counter.value < target and time.time() < deadline:
        time.sleep(0.02)
    return time.time()


def report(
    name: str, n: int, seconds: float, cpu_s: float, sink_s: float, ids: list, servers: dict
) -> float:
    unique = len(set(ids))
    rate = unique / seconds
    each = 1000 / max(unique, 1)
    print(
        f"{name}: {unique:,} unique emails at the sink ({len(ids) - unique} duplicates, "
        f"{n - unique} missing) in {seconds:.2f} s = {rate:,.0f} emails/s; CPU "
        f"{each * cpu_s:.2f} ms/email (sink {each * sink_s:.2f}, PostgreSQL "
        f"{each * servers['database']:.2f}, broker {each * servers['broker']:.2f})",
        flush=True,
    )
    return rate


def _requeue(db_url: str) -> None:
    """The campaign's sends back in the queue as the evaluation left them, for another round
    (not timed): their Message-IDs, hand-over marks, sent times and events cleared, the table
    vacuumed."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM campaigns_sendevent")
        conn.execute(
            "UPDATE campaigns_send SET status = 'queued', status_reason = '', lease = NULL, "
            "handoff_at = NULL, claimed_at = NULL, message_id = '', provider_message_id = '', "
            "sent_at = NULL, attempts = 0 WHERE campaign_id IS NOT NULL"
        )
        conn.execute("DELETE FROM campaigns_dispatchlease")
        conn.execute("VACUUM ANALYZE campaigns_send")


def _product_round(args, env, queue, n, db_url, counter, ours, sink_process, workers):
    """The product's workers deliver the queued sends; returns (emails/s, exactly once)."""
    counter.value = 0
    started_workers = []
    for number in range(args.workers):
        started_workers.append(
            celery_worker(
                queue,
                f"delivery{number}-{uuid.uuid4().hex[:6]}@%h",
                env,
                pool=("--pool=solo",)
                if args.concurrency == 1
                else ("--pool=prefork", f"--concurrency={args.concurrency}"),
            )
        )
    workers[:] = started_workers
    time.sleep(5)  # let the workers start and connect
    # Each worker and its pool's children (prefork), all of them for the whole run.
    processes = [psutil.Process(w.pid) for w in workers]
    processes += [child for p in processes for child in p.children(recursive=True)]
    cpu0 = sum(cpu(p) for p in processes)
    sink0 = cpu(sink_process)
    servers = ServerCPU().start()
    fanout = django_run(
        "import json, time\nfrom campaigns.tasks import dispatch_fanout\n"
        "started = time.time()\nchunks = dispatch_fanout()\n"
        "print(json.dumps({'started': started, 'chunks': chunks}))",
        env,
    )
    started = fanout["started"]
    finished = wait_for(counter, n, timeout=1800)
    product_cpu = sum(cpu(p) for p in processes) - cpu0
    product_sink = cpu(sink_process) - sink0
    product_servers = servers.stop()
    time.sleep(2)  # anything sent twice arrives meanwhile
    ours.send("take")
    ids = ours.recv()
    with psycopg.connect(db_url) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM campaigns_send WHERE campaign_id IS NOT NULL "
                "GROUP BY status"
            ).fetchall()
        )
        recorded = {
            row[0].encode()
            for row in conn.execute(
                "SELECT message_id FROM campaigns_send WHERE status = 'sent' "
                "AND campaign_id IS NOT NULL"
            )
        }
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=30)
    product = report(
        f"product ({args.workers} workers x {args.concurrency} dispatchers)",
        n,
        finished - started,
        product_cpu,
        product_sink,
        ids,
        product_servers,
    )
    print(
        f"  sends by status {statuses}; the sink's Message-IDs are the sent rows': "
        f"{'yes' if set(ids) == recorded else 'NO'}",
        flush=True,
    )
    exactly_once = len(ids) == len(set(ids)) == n == statuses.get("sent") and set(ids) == recorded
    if not exactly_once:
        print("  the product did NOT deliver every email exactly once", flush=True)
    return product, exactly_once


def _post_office_round(args, po_env, messages_path, count, counter, ours, sink_process) -> float:
    counter.value = 0
    sink0 = cpu(sink_process)
    servers = ServerCPU().start()
    po = django_run(
        f"PATH = {str(messages_path)!r}\nPROCESSES = {args.processes}\n" + POST_OFFICE,
        po_env,
    )
    po_finished = wait_for(counter, count, timeout=60)
    po_sink = cpu(sink_process) - sink0
    po_servers = servers.stop()
    time.sleep(1)
    ours.send("take")
    po_ids = ours.recv()
    rate = report(
        f"post_office ({args.processes} processes)",
        count,
        max(po_finished, po["started"] + po["seconds"]) - po["started"],
        po["cpu"],
        po_sink,
        po_ids,
        po_servers,
    )
    print(f"  post_office rows: {po['sent']:,} sent, {po['failed']:,} failed", flush=True)
    return rate


def _smtplib_round(messages_path, port, count, counter, ours, sink_process) -> float:
    counter.value = 0
    sink0 = cpu(sink_process)
    servers = ServerCPU().start()
    bare = bare_smtplib(str(messages_path), port)
    wait_for(counter, count, timeout=60)
    bare_sink = cpu(sink_process) - sink0
    bare_servers = servers.stop()
    ours.send("take")
    bare_ids = ours.recv()
    return report(
        "smtplib (one connection)",
        count,
        bare["seconds"],
        bare["cpu"],
        bare_sink,
        bare_ids,
        bare_servers,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="Dispatchers per worker (prefork children; 1: --pool=solo). 2 (one per core for "
        "the two workers' four) measured best: 5 spent 2.4 ms of worker CPU an email against "
        "1.9 and was 13%% slower (bench/README.md).",
    )
    parser.add_argument("--processes", type=int, default=2, help="post_office processes")
    parser.add_argument(
        "--po-threads", type=int, default=5, help="post_office's THREADS_PER_PROCESS"
    )
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    )
    parser.add_argument("--db-prefix", default="delivery_")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Rounds of the three senders, back to back (the product's sends requeued between "
        "rounds); the last line is the median of the rounds' ratios.",
    )
    args = parser.parse_args()

    db_name = f"{args.db_prefix}bench_{os.getpid()}"
    db_url = urlunsplit(urlsplit(args.pg)._replace(path=f"/{db_name}"))
    port = free_port()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = os.environ | {
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "expansion.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "CELERY_BROKER_URL": args.broker,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "DISPATCH_PARALLELISM": str(args.workers * args.concurrency),
        "DISPATCH_BUDGET_SECONDS": "3600",
        # Production mode for all three, as they would run: with DEBUG on, Django wraps
        # every cursor to log each statement (CursorDebugWrapper) in every worker.
        "DEBUG": "0",
        "SECRET_KEY": f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "TRACKING_WEBHOOKS": "0",
    }
    po_env = env | {
        "DJANGO_SETTINGS_MODULE": "bench.postoffice_settings",
        "BENCH_PO_THREADS": str(args.po_threads),
    }
    counter = multiprocessing.Value("l", 0)
    ours, theirs = multiprocessing.Pipe()
    sink = multiprocessing.Process(target=sink_main, args=(port, counter, theirs), daemon=True)
    workers: list[subprocess.Popen] = []
    messages_path = Path(tempfile.mkdtemp(prefix="delivery-")) / "messages.pickle"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    try:
        # post_office's tables are created too (its settings module adds it to the apps).
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=po_env, check=True
        )
        zone = midday_zone()
        with psycopg.connect(db_url) as conn:
            populate(conn, args.emails * 10, zone)
        django_run(SETUP, env)
        evaluated = django_run(
            "import json\nfrom campaigns.evaluate import campaigns_evaluate\n"
            "print(json.dumps({'queued': campaigns_evaluate().queued}))",
            env,
        )
        n = evaluated["queued"]
        print(f"{args.emails * 10:,} learners ({zone}); the evaluation queued {n:,} emails")
        sink.start()
        time.sleep(0.5)
        sink_process = psutil.Process(sink.pid)
        rounds: list[tuple[float, float, float, bool]] = []
        built: dict = {}
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {number} of {args.rounds}", flush=True)
            if number > 1:
                _requeue(db_url)
            product, exactly_once = _product_round(
                args, env, queue, n, db_url, counter, ours, sink_process, workers
            )
            if not built:
                built = django_run(f"PATH = {str(messages_path)!r}\n" + BUILD, env)
                print(
                    f"built the same {built['built']:,} messages for the others "
                    f"({built['bytes'] / max(built['built'], 1) / 1024:.1f} KiB each on the "
                    "wire)",
                    flush=True,
                )
            post_office = _post_office_round(
                args, po_env, messages_path, built["built"], counter, ours, sink_process
            )
            floor = _smtplib_round(messages_path, port, built["built"], counter, ours, sink_process)
            print(
                f"product / smtplib = {product / floor:.3f} (target >= 0.7); exactly once: "
                f"{'yes' if exactly_once else 'NO'}; at {datetime.now(UTC):%H:%M} UTC, load "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
            rounds.append((product, post_office, floor, exactly_once))
        ratios = sorted(product / theirs for product, theirs, _, _ in rounds)
        floors = sorted(product / floor for product, _, floor, _ in rounds)
        if len(rounds) > 1:
            print(
                f"{len(rounds)} rounds: product / post_office "
                f"{', '.join(f'{r:.3f}' for r in ratios)} (median {statistics.median(ratios):.3f});"
                f" product / smtplib median {statistics.median(floors):.3f}; exactly once in "
                f"every round: {'yes' if all(r[3] for r in rounds) else 'NO'}",
                flush=True,
            )
        print(f"ratio={statistics.median(ratios):.3f}")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        if sink.is_alive():
            sink.kill()
        messages_path.unlink(missing_ok=True)
        messages_path.parent.rmdir()
        if args.keep:
            print(f"kept database {db_name}")
        else:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
