"""Dispatch at scale: evaluation + delivery through Celery against a bare render-and-send loop.

    python bench/dispatch.py                       # 1,000,000 learners, 100,000 triggered
    python bench/dispatch.py --learners 100000     # 10 % of them triggered

Builds a scratch PostgreSQL database: learners (scored, reachable, in a time zone where it is
midday now, so quiet hours do not defer them), a course whose final module 10 % of them
completed in the last three hours, and one active campaign on the final-module trigger with
the starter "Course-completion cohort upsell" template and an offer, every guardrail on
(default policy; the global holdout set to 0 % so that every triggered learner is mailed).

Then, with an SMTP sink (aiosmtpd, its own process) and two Celery worker processes on Redis:

1. the product: from the start of the evaluation until the sink has accepted every email
   (evaluation in this process, then the dispatch tasks fanned out to the two workers);
2. the evaluation alone (timed inside 1) against one hand-written SQL query of the same
   trigger (the learners with a final-module completion in the send window);
3. a bare loop rendering the same template version for the same learners and sending over one
   reused SMTP connection (a sample of ``--bare`` emails; rates are compared).

Last line: ``ratio=<product emails/s / bare loop emails/s>``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sink_main(port: int, counter) -> None:  # runs in its own process
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        time.sleep(3600)


def midday_zone() -> str:
    """An Etc/GMT zone where it is about noon now (quiet hours are 21:00–08:00 local)."""
    offset = 12 - datetime.now(UTC).hour  # hours east of UTC
    offset = max(-12, min(14, offset))
    # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")


def populate(conn: psycopg.Connection, learners: int, zone: str) -> int:
    triggered = learners // 10
    conn.execute(
        """
        INSERT INTO learners_learner (external_id, email, name, time_zone, locale,
          marketing_opt_in, attributes, created_at, updated_at)
        SELECT 'd-' || g, 'd' || g || '@example.org', 'Learner ' || g, %s, 'en', true,
          '{}'::jsonb, now() - interval '200 days', now()
        FROM generate_series(1, %s) g
        """,
        [zone, learners],
    )
    conn.execute(
        """
        INSERT INTO learners_learnerscore (learner_id, model_version, lps, band, completion,
          assessment, community, downloads, login, rfm_cell, rfm_segment, stage, flag_stall,
          flag_open_ticket, flag_payment_failed, flag_offer_declined, flag_refund, computed_at)
        SELECT id, 1, 65, 'mid', 0.8, 0.7, 0.4, 0.4, 0.6, '', '', 'growth', false, false, false,
          false, false, now()
        FROM learners_learner
        """
    )
    conn.execute(
        "INSERT INTO learners_course (external_id, title, learning_path, created_at, updated_at)"
        " VALUES ('sql-1', 'SQL Basics', '', now(), now())"
    )
    course = conn.execute("SELECT id FROM learners_course").fetchone()[0]
    conn.execute(
        "INSERT INTO learners_module (course_id, external_id, title, position, is_final)"
        " VALUES (%s, 'final', 'Final project', 1, true)",
        [course],
    )
    module = conn.execute("SELECT id FROM learners_module").fetchone()[0]
    conn.execute(
        """
        INSERT INTO learners_enrollment (learner_id, course_id, enrolled_at, completed_at,
          progress, updated_at)
        SELECT id, %s, now() - interval '90 days', NULL, 90, now()
        FROM learners_learner WHERE id %% 10 = 0
        """,
        [course],
    )
    conn.execute(
        """
        INSERT INTO learners_event (learner_id, kind, occurred_at, value, course_id, module_id,
          properties, idempotency_key, received_at)
        SELECT id, 'module_completed', now() - (id %% 180) * interval '1 minute', NULL, %s, %s,
          '{}'::jsonb, 'final-' || id, now()
        FROM learners_learner WHERE id %% 10 = 0
        """,
        [course, module],
    )
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    return triggered


SETUP = """
from decimal import Decimal
from campaigns.models import Campaign, JourneyMoment
from expansion.models import Offer, Product
from experiments.models import ExperimentSettings
from templates.messages import template_snapshot
from templates.models import MessageTemplate
settings_row = ExperimentSettings.load()
settings_row.global_holdout_percent = 0
settings_row.save()
template = MessageTemplate.objects.get(name="Course-completion cohort upsell")
template_snapshot(template=template)
product = Product.objects.create(sku="SQL-2", name="SQL Advanced", kind="course",
                                 price=Decimal("99"), currency="USD")
offer = Offer.objects.create(name="SQL Advanced for graduates", kind="cross_sell",
                             product=product, cta_url="https://learn.example.org/sql-2",
                             positioning="The next course on the path.")
Campaign.objects.create(name="Graduates: next course", trigger="final_module",
                        moment=JourneyMoment.objects.get(slug="course_completion"),
                        email_template=template, offer=offer, status="active",
                        requires_creator_approval=False)
print("{}")
"""

HAND_WRITTEN = """
SELECT e.learner_id, e.id, e.occurred_at
FROM learners_event e JOIN learners_module m ON m.id = e.module_id
WHERE e.kind = 'module_completed' AND m.is_final
  AND e.occurred_at > now() - interval '24 hours' AND e.occurred_at <= now()
"""

WRITE_FLOOR = f"""
INSERT INTO campaigns_send
  (learner_id, campaign_id, occurrence_key, trigger, moment_id, offer_id, course_id, reason,
   rule, priority, scheduled_for, channel, category, template_version_id, locale, to_email,
   subject, status, status_reason, attempts, is_test, message_id, provider_message_id,
   created_at, clicks, dismiss_reason)
SELECT h.learner_id, c.id, 'floor:' || h.id, c.trigger, c.moment_id, c.offer_id, NULL, '', '',
  c.priority, now(), 'email', c.category,
  (SELECT MAX(id) FROM message_templates_messagetemplateversion), 'en', '', '', 'queued', '',
  0, false, '', '', now(), 0, ''
FROM ({HAND_WRITTEN}) h CROSS JOIN (SELECT * FROM campaigns_campaign LIMIT 1) c
"""

BARE = """
import json, smtplib, time
from django.conf import settings
from campaigns.dispatch import send_context
from campaigns.models import Send
from templates.mail import email_build
from templates.messages import message_render
sends = list(Send.objects.filter(status="sent").select_related(
    "learner", "learner__score", "offer", "offer__product", "course", "template_version"
).order_by("id")[:COUNT])
from django.utils import timezone
now = timezone.now()
started = time.perf_counter()
smtp = smtplib.SMTP("127.0.0.1", PORT)
for send in sends:
    rendered = message_render(version=send.template_version, context=send_context(send, now))
    message = email_build(rendered=rendered, to=send.learner.email, unsubscribe_url="",
                          message_id="<bare-%d@bench>" % send.pk, test=False)
    smtp.send_message(message.message())
smtp.quit()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "emails": len(sends)}))
"""


def django_run(code: str, env: dict[str, str]) -> dict:
    import json

    proc = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=1_000_000)
    parser.add_argument("--bare", type=int, default=20_000, help="Emails in the bare loop.")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    db_name = f"expansion_dispatch_{os.getpid()}"
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
        "DISPATCH_PARALLELISM": "2",
        "DISPATCH_BUDGET_SECONDS": "3600",
    }
    counter = multiprocessing.Value("l", 0)
    sink = multiprocessing.Process(target=sink_main, args=(port, counter), daemon=True)
    workers: list[subprocess.Popen] = []
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        zone = midday_zone()
        t = time.perf_counter()
        with psycopg.connect(db_url) as conn:
            triggered = populate(conn, args.learners, zone)
        print(
            f"populated {args.learners:,} learners ({zone}), {triggered:,} final-module "
            f"completions in the last 3 h: {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        django_run(SETUP, env)
        sink.start()
        time.sleep(0.5)
        for number in range(2):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "expansion",
                        "worker",
                        "--pool=solo",
                        "-Q",
                        queue,
                        "-n",
                        f"bench{number}@%h",
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel=WARNING",
                    ],
                    cwd=ROOT,
                    env=env,
                )
            )
        time.sleep(4)  # let the workers connect
        product = django_run(
            """
import json, time
from campaigns.evaluate import campaigns_evaluate
from campaigns.tasks import dispatch_fanout
started = time.perf_counter()
result = campaigns_evaluate()
evaluated = time.perf_counter() - started
chunks = dispatch_fanout()
print(json.dumps({"evaluation": evaluated, "queued": result.queued,
                  "stopped": dict(result.stopped), "candidates": result.candidates,
                  "chunks": chunks, "started": time.time() - evaluated}))
""",
            env,
        )
        deadline = time.time() + 3600
        while counter.value < product["queued"] and time.time() < deadline:
            time.sleep(0.2)
        total = time.time() - product["started"]
        received = counter.value
        print(
            f"product: evaluation {product['evaluation']:.2f} s ({product['candidates']:,} "
            f"candidates, {product['queued']:,} queued, stopped {product['stopped']}); all "
            f"{received:,} emails accepted by the sink {total:.2f} s after the evaluation "
            f"started = {received / total:,.0f} emails/s",
            flush=True,
        )
        with psycopg.connect(db_url) as conn:
            t = time.perf_counter()
            rows = conn.execute(HAND_WRITTEN).fetchall()
            hand = time.perf_counter() - t
            # The floor of any evaluation: the same query writing its Send rows, no guardrail
            # (rolled back; occurrence keys of its own, so no conflict with the real ones).
            t = time.perf_counter()
            written = conn.execute(WRITE_FLOOR).rowcount
            floor = time.perf_counter() - t
            conn.rollback()
            statuses = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM campaigns_send GROUP BY status"
                ).fetchall()
            )
        print(
            f"hand-written trigger query: {hand:.2f} s for {len(rows):,} rows; evaluation / "
            f"hand-written = {product['evaluation'] / hand:.2f} (target ≤ 2); sends by status "
            f"{statuses}\nthe same query writing its {written:,} Send rows (no guardrails, "
            f"rolled back): {floor:.2f} s = {floor / hand:.1f}× the query; evaluation / that "
            f"= {product['evaluation'] / floor:.2f}",
            flush=True,
        )
        for worker in workers:
            worker.terminate()
        before = counter.value
        bare = django_run(f"COUNT = {args.bare}\nPORT = {port}\n" + BARE, env)
        bare_rate = bare["emails"] / bare["seconds"]
        print(
            f"bare loop: {bare['emails']:,} emails rendered and sent over one connection in "
            f"{bare['seconds']:.2f} s = {bare_rate:,.0f} emails/s (sink got "
            f"{counter.value - before:,})",
            flush=True,
        )
        print(f"ratio={(received / total) / bare_rate:.3f}")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        if sink.is_alive():
            sink.kill()
        if args.keep:
            print(f"kept database {db_name}")
        else:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
