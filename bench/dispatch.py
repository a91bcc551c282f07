"""Dispatch at scale: evaluation + delivery through Celery against a bare render-and-send loop.

    python bench/dispatch.py                       # 1,000,000 learners, 100,000 triggered
    python bench/dispatch.py --learners 100000     # 10 % of them triggered

Builds a scratch PostgreSQL database: learners (scored, reachable, in a time zone where it is
midday now, so quiet hours do not defer them), a course whose final module 10 % of them
completed in the last three hours, and one active campaign on the final-module trigger with
the starter "Course-completion cohort upsell" template and an offer, every guardrail on
(default policy; the global holdout set to 0 % so that every triggered learner is mailed),
and a send history for the caps to read (a newsletter five weeks ago to every fifth learner).

Then, with an SMTP sink (aiosmtpd, its own process) and two Celery worker processes on Redis:

1. a hand-written evaluation of the same campaign: one ``INSERT … SELECT`` applying the same
   trigger, every guardrail, quiet hours and the three caps in the learner's zone, writing the
   Send rows (best of three runs, each committed, then deleted);
2. the product: from the start of the evaluation until the sink has accepted every email
   (evaluation in this process, then the dispatch tasks fanned out to the two workers); its
   Send rows must be the hand-written evaluation's, row for row (a fingerprint);
3. the evaluation alone (timed inside 2) against the hand-written evaluation, and against
   the bare trigger query (the learners with a final-module completion in the send window),
   which only reads;
4. a bare loop rendering the same template version for the same learners and sending over one
   reused SMTP connection (a sample of ``--bare`` emails; rates are compared).

``--evaluation-only`` stops after the evaluations (last line ``evaluation_ratio=``);
``--reuse DATABASE`` runs them again on a database kept with ``--keep``.

Last line: ``ratio=<product emails/s / bare loop emails/s>``.
"""

from __future__ import annotations

import argparse
import json
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
          marketing_opt_in, attributes, role, created_at, updated_at)
        SELECT 'd-' || g, 'd' || g || '@example.org', 'Learner ' || g, %s, 'en', true,
          '{}'::jsonb, 'member', now() - interval '200 days', now()
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
        "INSERT INTO learners_course (external_id, title, learning_path, url, created_at,"
        " updated_at) VALUES ('sql-1', 'SQL Basics', '', '', now(), now())"
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
from expansion.commerce.models import Offer, Product
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
campaign = Campaign.objects.create(
    name="Graduates: next course", trigger="final_module",
    moment=JourneyMoment.objects.get(slug="course_completion"), email_template=template,
    offer=offer, status="active", requires_creator_approval=False)
print("{}")
"""

# The bench's campaign and policy, for the hand-written evaluation.
CONFIG = """
import json
from campaigns.evaluate import COUNTED
from campaigns.models import Campaign, GuardrailPolicy, Rule
from experiments.assignment import global_holdout_bucket_limit
from experiments.models import BUCKETS
from learners.models import MARKETING_CATEGORIES
campaign = Campaign.objects.get(name="Graduates: next course")
template, offer = campaign.email_template, campaign.offer
policy = GuardrailPolicy.load()
salt, limit = global_holdout_bucket_limit()
print(json.dumps({
    "campaign": campaign.pk, "moment": campaign.moment_id, "offer": offer.pk,
    "offers_allowed": campaign.moment.offers_allowed, "category": campaign.category,
    "priority": campaign.priority, "window_hours": campaign.send_within_hours,
    "version": template.versions.order_by("-number").first().pk,
    "salt": salt, "holdout_limit": limit, "buckets": BUCKETS, "labels": dict(Rule.choices),
    "counted": [str(status) for status in COUNTED],
    "marketing": [str(category) for category in MARKETING_CATEGORIES],
    "policy": {name: str(getattr(policy, name)) for name in (
        "email_cap", "cap_window_days", "email_cap_day", "email_cap_week", "quiet_start",
        "quiet_end", "min_lps", "declined_days", "bought_days")},
}))
"""

# A send history, so that the frequency caps have something to count: a newsletter five weeks
# ago to every fifth learner (all the triggered ones among them) — outside every cap window,
# so it stops nobody, but each cap's probe finds and reads it.
HISTORY = """
INSERT INTO campaigns_send
  (learner_id, campaign_id, occurrence_key, trigger, reason, rule, scheduled_for, channel,
   category, template_version_id, locale, to_email, subject, status, status_reason, attempts,
   is_test, message_id, provider_message_id, created_at, sent_at, clicks, dismiss_reason)
SELECT l.id, NULL, 'newsletter', '', '', '', now() - interval '35 days', 'email', 'news',
  (SELECT MAX(id) FROM message_templates_messagetemplateversion), 'en', l.email,
  'November news', 'sent', '', 1, false, '<news-' || l.id || '@bench>', '',
  now() - interval '35 days', now() - interval '35 days', 0, ''
FROM learners_learner l WHERE mod(l.id, 5) = 0
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

# The whole evaluation of the bench's campaign written by hand as one statement: the same
# trigger, every guardrail the product applies to it (consent, global holdout, at-risk, LPS,
# open ticket, payment failure, refund, declined, bought), one offer per moment, quiet hours
# and the rolling / calendar-day / calendar-week caps in the learner's own zone, writing the
# same Send rows. What a good engineer would write for this one campaign and this policy; the
# bench checks it writes exactly the rows the product writes.
HAND_EVALUATION = """
WITH t AS (
  SELECT e.learner_id, 'event:' || e.id AS occurrence_key, e.occurred_at, e.course_id,
    'completed the final module of ' || co.title AS detail
  FROM learners_event e
  JOIN learners_module m ON m.id = e.module_id
  LEFT JOIN learners_course co ON co.id = e.course_id
  WHERE e.kind = 'module_completed' AND m.is_final
    AND e.occurred_at > %(since)s AND e.occurred_at <= %(now)s
    AND NOT EXISTS (SELECT 1 FROM campaigns_send s WHERE s.campaign_id = %(campaign)s
      AND s.learner_id = e.learner_id AND s.occurrence_key = 'event:' || e.id
      AND s.channel = 'email')
    AND NOT EXISTS (SELECT 1 FROM learners_dirtylearner d WHERE d.learner_id = e.learner_id)
), g AS MATERIALIZED (
  SELECT t.*, l.email, l.locale, l.time_zone, sc.lps,
    CASE
      WHEN NOT %(offers_allowed)s THEN 'offer_free_moment'
      WHEN l.email = '' OR NOT l.marketing_opt_in OR l.unsubscribed_at IS NOT NULL
        OR EXISTS (SELECT 1 FROM learners_emailsuppression x WHERE x.email = LOWER(l.email))
        OR EXISTS (SELECT 1 FROM learners_categoryoptout o
                   WHERE o.learner_id = l.id AND o.category = %(category)s)
        THEN 'not_reachable'
      WHEN mod(('x' || substr(md5(%(salt)s || ':' || CAST(t.learner_id AS TEXT)), 1, 8))
               ::bit(32)::bigint, %(buckets)s) < %(holdout_limit)s THEN 'global_holdout'
      WHEN sc.stage = 'at_risk' THEN 'at_risk'
      WHEN sc.lps IS NULL OR sc.lps < %(min_lps)s THEN 'low_lps'
      WHEN sc.flag_open_ticket THEN 'open_ticket'
      WHEN sc.flag_payment_failed THEN 'payment_failed'
      WHEN sc.flag_refund THEN 'refund'
      WHEN EXISTS (SELECT 1 FROM learners_event d WHERE d.learner_id = t.learner_id
                   AND d.kind = 'offer_declined' AND d.occurred_at > %(declined_since)s
                   AND d.occurred_at <= %(now)s) THEN 'declined'
      WHEN EXISTS (SELECT 1 FROM expansion_order o WHERE o.learner_id = t.learner_id
                   AND o.placed_at > %(bought_since)s AND o.placed_at <= %(now)s)
        THEN 'bought'
      ELSE '' END AS rule,
    (%(now)s AT TIME ZONE l.time_zone) AS local_now
  FROM t
  JOIN learners_learner l ON l.id = t.learner_id
  LEFT JOIN learners_learnerscore sc ON sc.learner_id = t.learner_id
), q AS (
  SELECT g.*, CASE
      WHEN %(quiet_start)s = %(quiet_end)s THEN %(now)s
      WHEN %(quiet_start)s > %(quiet_end)s AND local_now::time >= %(quiet_start)s
        THEN ((local_now::date + 1) + %(quiet_end)s) AT TIME ZONE time_zone
      WHEN %(quiet_start)s > %(quiet_end)s AND local_now::time < %(quiet_end)s
        THEN (local_now::date + %(quiet_end)s) AT TIME ZONE time_zone
      WHEN %(quiet_start)s < %(quiet_end)s AND local_now::time >= %(quiet_start)s
        AND local_now::time < %(quiet_end)s
        THEN (local_now::date + %(quiet_end)s) AT TIME ZONE time_zone
      ELSE %(now)s END AS scheduled_for,
    CASE WHEN rule = '' THEN ROW_NUMBER() OVER (
      PARTITION BY learner_id, rule = '' ORDER BY occurred_at DESC, occurrence_key) END AS place
  FROM g
), s AS (
  SELECT q.*, CASE WHEN place > 1 THEN 'superseded' ELSE rule END AS rule2,
    date_trunc('day', scheduled_for AT TIME ZONE time_zone) AS local_day,
    date_trunc('week', scheduled_for AT TIME ZONE time_zone) AS local_week
  FROM q
), k AS (
  SELECT s.*, a.already_rolling, a.already_day, a.already_week,
    SUM(CASE WHEN rule2 = '' THEN 1 ELSE 0 END) OVER w AS n1
  FROM s
  -- The learner's counted sends, one index probe for all three windows.
  CROSS JOIN LATERAL (
    SELECT
      COUNT(*) FILTER (WHERE COALESCE(p.scheduled_for, p.created_at)
          > s.scheduled_for - make_interval(days => %(cap_window_days)s)
        AND COALESCE(p.scheduled_for, p.created_at)
          < s.scheduled_for + make_interval(days => %(cap_window_days)s)) AS already_rolling,
      COUNT(*) FILTER (WHERE COALESCE(p.scheduled_for, p.created_at)
          >= s.local_day AT TIME ZONE s.time_zone
        AND COALESCE(p.scheduled_for, p.created_at)
          < (s.local_day + interval '1 day') AT TIME ZONE s.time_zone) AS already_day,
      COUNT(*) FILTER (WHERE COALESCE(p.scheduled_for, p.created_at)
          >= s.local_week AT TIME ZONE s.time_zone
        AND COALESCE(p.scheduled_for, p.created_at)
          < (s.local_week + interval '7 days') AT TIME ZONE s.time_zone) AS already_week
    FROM campaigns_send p WHERE p.learner_id = s.learner_id AND p.channel = 'email'
      AND p.status = ANY(%(counted)s) AND p.category = ANY(%(marketing)s) AND NOT p.is_test
  ) a
  WINDOW w AS (PARTITION BY learner_id ORDER BY occurrence_key)
), k1 AS (
  SELECT k.*, rule2 = '' AND already_rolling + n1 > NULLIF(%(email_cap)s, 0) AS s1
  FROM k
), k2 AS (
  SELECT k1.*, rule2 = '' AND s1 IS NOT TRUE AND already_day + SUM(
      CASE WHEN rule2 = '' AND s1 IS NOT TRUE THEN 1 ELSE 0 END) OVER w
    > NULLIF(%(email_cap_day)s, 0) AS s2
  FROM k1
  WINDOW w AS (PARTITION BY learner_id ORDER BY occurrence_key)
), k3 AS (
  SELECT k2.*, rule2 = '' AND s1 IS NOT TRUE AND s2 IS NOT TRUE AND already_week + SUM(
      CASE WHEN rule2 = '' AND s1 IS NOT TRUE AND s2 IS NOT TRUE THEN 1 ELSE 0 END) OVER w
    > NULLIF(%(email_cap_week)s, 0) AS s3
  FROM k2
  WINDOW w AS (PARTITION BY learner_id ORDER BY occurrence_key)
), c AS (
  SELECT k3.*, CASE WHEN rule2 <> '' THEN rule2 WHEN s1 THEN 'cap_rolling'
      WHEN s2 THEN 'cap_day' WHEN s3 THEN 'cap_week' ELSE '' END AS final_rule
  FROM k3
)
INSERT INTO campaigns_send
  (learner_id, campaign_id, occurrence_key, trigger, moment_id, arm_id, offer_id, course_id,
   reason, rule, priority, scheduled_for, channel, category, template_version_id, locale,
   to_email, subject, status, status_reason, attempts, is_test, message_id,
   provider_message_id, created_at, clicks, dismiss_reason)
SELECT learner_id, %(campaign)s, occurrence_key, 'final_module', %(moment)s, NULL, %(offer)s,
  course_id,
  SUBSTR(detail || COALESCE('; LPS ' || CAST(CAST(ROUND(lps) AS INTEGER) AS TEXT), ''), 1, 500),
  final_rule, %(priority)s, scheduled_for, 'email', %(category)s, %(version)s, locale, email,
  '', CASE WHEN final_rule = '' THEN 'queued' ELSE 'suppressed' END,
  COALESCE(%(labels)s::jsonb ->> final_rule, ''), 0, false, '', '', %(now)s, 0, ''
FROM c
ON CONFLICT DO NOTHING
"""

# What both evaluations must agree on, row by row (queued or suppressed and why, whatever
# delivery has done to the queued ones since).
SENDS_FINGERPRINT = """
SELECT COUNT(*), md5(string_agg(concat_ws('|', learner_id, occurrence_key,
  status = 'suppressed', rule, CASE WHEN status = 'suppressed' THEN status_reason END, reason,
  priority, scheduled_for, to_email, locale, offer_id, template_version_id),
  ',' ORDER BY learner_id, occurrence_key))
FROM campaigns_send WHERE campaign_id = %s
"""


BARE = """
import json, smtplib, time
from django.conf import settings
from campaigns.dispatch import send_context
from campaigns.models import Send
from templates.mail import email_build
from templates.messages import message_render
sends = list(Send.objects.filter(status="sent", campaign__isnull=False).select_related(
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


def celery_worker(
    queue: str, name: str, env: dict[str, str], *, pool: tuple[str, ...] = ("--pool=solo",)
) -> subprocess.Popen:
    """A Celery worker of the product on ``queue`` (bench/dispatch.py and bench/delivery.py):
    ``pool``, its pool options; no gossip, mingle or heartbeat between the bench's workers."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "expansion",
            "worker",
            *pool,
            "-Q",
            queue,
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
    )


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


# The product's evaluation (``NOW``: the moment both evaluations decide at), then, with
# ``FANOUT``, the dispatch tasks fanned out to the workers.
EVALUATE = """
import json, time
from datetime import datetime
from campaigns.evaluate import campaigns_evaluate
from campaigns.tasks import dispatch_fanout
started = time.perf_counter()
result = campaigns_evaluate(now=datetime.fromisoformat(NOW))
evaluated = time.perf_counter() - started
chunks = dispatch_fanout() if FANOUT else 0
print(json.dumps({"evaluation": evaluated, "queued": result.queued,
                  "stopped": dict(result.stopped), "candidates": result.candidates,
                  "chunks": chunks, "started": time.time() - evaluated,
                  "timings": result.timings}))
"""


def hand_params(config: dict, now: datetime) -> dict:
    from datetime import time as clock
    from datetime import timedelta

    policy = config["policy"]
    return {
        "now": now,
        "since": now - timedelta(hours=config["window_hours"]),
        "campaign": config["campaign"],
        "moment": config["moment"],
        "offer": config["offer"],
        "version": config["version"],
        "priority": config["priority"],
        "category": config["category"],
        "offers_allowed": config["offers_allowed"],
        "salt": config["salt"],
        "buckets": config["buckets"],
        "holdout_limit": config["holdout_limit"],
        "labels": json.dumps(config["labels"]),
        "min_lps": int(policy["min_lps"]),
        "declined_since": now - timedelta(days=int(policy["declined_days"])),
        "bought_since": now - timedelta(days=int(policy["bought_days"])),
        "quiet_start": clock.fromisoformat(policy["quiet_start"]),
        "quiet_end": clock.fromisoformat(policy["quiet_end"]),
        "cap_window_days": int(policy["cap_window_days"]),
        "email_cap": int(policy["email_cap"]),
        "email_cap_day": int(policy["email_cap_day"]),
        "email_cap_week": int(policy["email_cap_week"]),
        "counted": config["counted"],
        "marketing": config["marketing"],
    }


def hand_evaluation(db_url: str, config: dict, now: datetime, runs: int = 3) -> dict:
    """The hand-written evaluation, ``runs`` times, each committed (as the product commits)
    and its rows then deleted; the rows' fingerprint for the comparison."""
    params = hand_params(config, now)
    timings = []
    with psycopg.connect(db_url) as conn:
        conn.execute("SET jit = off")
        conn.commit()
        for _ in range(runs):
            started = time.perf_counter()
            rows = conn.execute(HAND_EVALUATION, params).rowcount
            conn.commit()
            timings.append(time.perf_counter() - started)
            fingerprint = conn.execute(SENDS_FINGERPRINT, [config["campaign"]]).fetchone()
            statuses = dict(
                conn.execute(
                    "SELECT rule, COUNT(*) FROM campaigns_send WHERE campaign_id = %s "
                    "GROUP BY rule",
                    [config["campaign"]],
                ).fetchall()
            )
            conn.execute("DELETE FROM campaigns_send WHERE campaign_id = %s", [config["campaign"]])
            conn.commit()
            # Dead index entries would slow the next run's probes (and the product's).
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE campaigns_send")
            conn.autocommit = False
    return {"runs": timings, "rows": rows, "fingerprint": fingerprint, "rules": statuses}


def compare_evaluations(db_url: str, config: dict, product: dict, hand: dict) -> None:
    """Both evaluations must have written the same rows; print the evaluation ratio."""
    with psycopg.connect(db_url) as conn:
        fingerprint = conn.execute(SENDS_FINGERPRINT, [config["campaign"]]).fetchone()
    same = fingerprint == hand["fingerprint"]
    best = min(hand["runs"])
    print(
        f"evaluation: product {product['evaluation']:.2f} s (steps {product['timings']}); "
        f"hand-written {best:.2f} s; rules {hand['rules']}; same {fingerprint[0]:,} rows as "
        f"the hand-written: {'yes' if same else 'NO'}\n"
        f"evaluation / hand-written evaluation = {product['evaluation'] / best:.2f} "
        "(target ≤ 2)",
        flush=True,
    )
    if not same:
        raise SystemExit("the product and the hand-written evaluation wrote different sends")
    print(f"evaluation_ratio={product['evaluation'] / best:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=1_000_000)
    parser.add_argument("--bare", type=int, default=20_000, help="Emails in the bare loop.")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="A database kept by an earlier run (no delivery)."
    )
    parser.add_argument(
        "--evaluation-only",
        action="store_true",
        help="Time the evaluation against the hand-written one; no delivery, no bare loop.",
    )
    args = parser.parse_args()

    db_name = args.reuse or f"expansion_dispatch_{os.getpid()}"
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
    if args.reuse:
        args.evaluation_only = args.keep = True
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM campaigns_send WHERE campaign_id IS NOT NULL")
            conn.execute("VACUUM ANALYZE campaigns_send")
    else:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
    try:
        if not args.reuse:
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
            with psycopg.connect(db_url, autocommit=True) as conn:
                history = conn.execute(HISTORY).rowcount
                conn.execute("VACUUM ANALYZE campaigns_send")
            print(f"send history: {history:,} newsletter emails five weeks ago", flush=True)
        config = django_run(CONFIG, env)
        now = datetime.now(UTC)
        hand_eval = hand_evaluation(db_url, config, now)
        print(
            f"hand-written evaluation (one statement, best of {len(hand_eval['runs'])}): "
            f"{min(hand_eval['runs']):.2f} s (runs "
            f"{', '.join(f'{r:.2f}' for r in hand_eval['runs'])}); {hand_eval['rows']:,} sends "
            "written (deleted after each run)",
            flush=True,
        )
        if args.evaluation_only:
            product = django_run(f"NOW = {now.isoformat()!r}\nFANOUT = False\n" + EVALUATE, env)
            compare_evaluations(db_url, config, product, hand_eval)
            return
        sink.start()
        time.sleep(0.5)
        for number in range(2):
            workers.append(celery_worker(queue, f"bench{number}@%h", env))
        time.sleep(4)  # let the workers connect
        product = django_run(f"NOW = {now.isoformat()!r}\nFANOUT = True\n" + EVALUATE, env)
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
        compare_evaluations(db_url, config, product, hand_eval)
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
