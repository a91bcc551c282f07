"""Rendering personalised emails: the product's path against a bare python-liquid render.

    python bench/render.py              # 100,000 emails
    python bench/render.py --emails 10000

Both sides render the same four parts (subject, preheader, HTML, text) of the starter template
"Cross-sell: the next step" — its stored, compiled form, CSS already inlined — for the same
learners:

- product: for each learner, ``templates.context.message_context`` from loaded objects (the
  learner, their score, course, offer and receipt; no queries, as a dispatcher batches them),
  then ``templates.messages.message_render`` (the sandboxed, autoescaping, strict-undefined
  environment with the product's filters; compiled templates cached);
- bare: python-liquid's default ``Environment`` (with the same custom filters registered, since
  the template uses them), each part parsed once, rendered with a prebuilt context dict.

Prints both rates and, last, ``ratio=<product rate / bare rate>`` (target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "expansion.settings")
# The bench makes no query (objects are built in memory): a database that is never connected.
os.environ.setdefault("DATABASE_URL", "postgres://unused@127.0.0.1:1/unused")

import django  # noqa: E402

django.setup()

from liquid import Environment  # noqa: E402

from learners.models import Learner, LearnerScore  # noqa: E402
from templates import engine  # noqa: E402
from templates.context import Receipt, message_context  # noqa: E402
from templates.library import STARTERS  # noqa: E402
from templates.messages import compile_content, message_render  # noqa: E402
from templates.models import MessageTemplateVersion  # noqa: E402

CHUNK = 1000
ZONES = ["Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]


def people(n: int) -> list[tuple[Learner, LearnerScore, dict, dict, Receipt]]:
    now = datetime(2026, 11, 22, 9, tzinfo=UTC)
    rows = []
    for i in range(n):
        learner = Learner(
            external_id=f"l{i}",
            name=f"Learner{i} Example",
            email=f"l{i}@example.org",
            time_zone=ZONES[i % 4],
            locale="en",
        )
        score = LearnerScore(
            lps=40 + i % 60,
            band="high" if i % 3 else "mid",
            stage="growth",
            completion=0.5,
            assessment=0.8,
            community=0.2,
            downloads=0.4,
            login=0.9,
        )
        course = {
            "title": f"SQL Basics {i % 7}",
            "progress": (i % 100) / 100,
            "modules_completed": i % 8,
            "modules_total": 8,
            "next_module": f"Module {i % 8 + 1}",
            "url": "https://learn.example.org/c",
        }
        offer = {
            "name": "Next course",
            "product": "SQL Intermediate",
            "price": Decimal("104.30"),
            "list_price": Decimal("149.00"),
            "discount_percent": 30 if i % 2 else 0,
            "saving": Decimal("44.70"),
            "bonus": "",
            "expires_at": now + timedelta(hours=48),
            "cta_url": f"https://t.example.org/c/{i}",
            "positioning": "The next step after SQL Basics & friends <3",
        }
        rows.append((learner, score, course, offer, Receipt(i % 5, i % 3, 81.5, i % 20)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=100_000)
    args = parser.parse_args()

    starter = next(s for s in STARTERS if s["name"] == "Cross-sell: the next step")
    content = compile_content(starter)
    version = MessageTemplateVersion(
        number=1, channel="email", category="offers", content={"en": content}, default_locale="en"
    )
    data = people(args.emails)
    bare_env = Environment()
    for name in ("money", "percent", "pluralize", "local_date"):
        # The product's filters without the sandbox's bounds (engine wraps each one).
        bounded = engine.environment().filters[name]
        bare_env.filters[name] = getattr(bounded, "__wrapped__", bounded)
    parts = [
        bare_env.from_string(content[key])
        for key in ("subject", "preheader", "html_compiled", "text_compiled")
    ]

    def context_for(learner, score, course, offer, receipt) -> dict:
        return message_context(
            learner=learner,
            score=score,
            course=course,
            offer=offer,
            receipt=receipt,
            reason="Completed SQL Basics 3 h ago; LPS 82; no offer in the last 7 days.",
            unsubscribe_url=f"https://t.example.org/u/{learner.external_id}",
            preferences_url=f"https://t.example.org/p/{learner.external_id}",
        )

    # The two sides take turns, CHUNK emails at a time, so that a change in the machine's
    # speed during the run (this VM's varies by ±20 % over seconds) weighs on both alike.
    product_seconds = bare_seconds = 0.0
    product_bytes = bare_bytes = 0
    for start in range(0, args.emails, CHUNK):
        chunk = data[start : start + CHUNK]
        started = time.perf_counter()
        for person in chunk:
            rendered = message_render(version=version, context=context_for(*person))
            product_bytes += len(rendered.html) + len(rendered.text)
        product_seconds += time.perf_counter() - started

        contexts = [context_for(*person) for person in chunk]
        started = time.perf_counter()
        for context in contexts:
            out = [part.render(**context) for part in parts]
            bare_bytes += len(out[2]) + len(out[3])
        bare_seconds += time.perf_counter() - started

    product_rate = args.emails / product_seconds
    bare_rate = args.emails / bare_seconds
    print(f"emails: {args.emails:,} (template: {starter['name']!r}, 4 parts each)")
    print(
        f"product path (context + sandboxed render): {product_seconds:.2f} s, "
        f"{product_rate:,.0f} emails/s, {product_bytes / args.emails:,.0f} chars each"
    )
    print(
        f"bare python-liquid render (prebuilt contexts): {bare_seconds:.2f} s, "
        f"{bare_rate:,.0f} emails/s, {bare_bytes / args.emails:,.0f} chars each"
    )
    print(f"ratio={product_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
