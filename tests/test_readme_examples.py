"""The README's API examples run against the demo data as written (``make run`` loads it)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from expansion.commerce.models import Order, Subscription
from expansion.demo.data import demo_seed
from learners.models import Course, Enrollment, Event, Learner

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"<!-- example: POST (\S+) -->\n```json\n(.*?)\n```", re.S)

pytestmark = pytest.mark.django_db


def examples() -> list[tuple[str, dict]]:
    return [(path, json.loads(body)) for path, body in EXAMPLE.findall(README.read_text())]


def test_the_readme_has_an_example_for_every_bulk_endpoint():
    assert [path for path, _ in examples()] == [
        f"/api/v1/{name}/bulk/"
        for name in [
            "learners",
            "courses",
            "enrollments",
            "events",
            "products",
            "orders",
            "subscriptions",
        ]
    ]


def test_every_readme_example_is_accepted_by_a_seeded_demo(api):
    demo_seed(learners=40, anchor=date(2026, 6, 1))
    for path, body in examples():
        response = api.post(path, body, format="json")
        assert response.status_code == 200, (path, response.json())
        assert response.json()["errors"] == [], path
    assert Learner.objects.get(external_id="demo-00001").name == "Ann Example"
    course = Course.objects.get(external_id="data-4")
    assert list(course.modules.order_by("position").values_list("external_id", "is_final")) == [
        ("m1", False),
        ("m2", True),
    ]
    assert Enrollment.objects.filter(learner__external_id="lms-new-1", course=course).count() == 1
    assert Event.objects.filter(learner__external_id="lms-new-1").count() == 2
    order = Order.objects.get(external_id="lms-order-1")
    assert sorted(order.lines.values_list("product__sku", flat=True)) == ["CERT-1", "COURSE-DATA-4"]
    assert Subscription.objects.get(external_id="lms-sub-1").plan.sku == "PLAN-PRO"
    # The events example replayed: nothing new, both named as duplicates.
    path, body = examples()[3]
    replay = api.post(path, body, format="json").json()
    assert (replay["accepted"], len(replay["duplicates"])) == (0, 2)


def test_the_events_section_example_names_demo_ids(api):
    demo_seed(learners=40, anchor=date(2026, 6, 1))
    text = README.read_text()
    block = text[text.index("**Events** (`POST /events/bulk/`)") :]
    start = block.index("```json\n") + len("```json\n")
    body = json.loads(block[start : block.index("\n```", start)])
    response = api.post("/api/v1/events/bulk/", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == 1
