"""Inputs schemathesis found crashing the API (500): each now a 400 naming item and field,
and nothing written."""

import json

import pytest

from expansion.commerce.models import Order, Product, Subscription
from learners.models import Event, Learner
from tests.factories.learners import LearnerFactory

pytestmark = pytest.mark.django_db


def bulk(api, resource, items):
    return api.post(f"/api/v1/{resource}/bulk/", {"items": items}, format="json")


@pytest.mark.parametrize(
    ("resource", "item", "field", "model"),
    [
        ("products", {"sku": "X", "name": "X", "kind": {}, "price": "49.00"}, "kind", Product),
        (
            "subscriptions",
            {
                "external_id": "s1",
                "learner": "ann",
                "plan": "pro",
                "status": {},
                "mrr": "49.00",
                "started_at": "2026-01-01T00:00:00Z",
            },
            "status",
            Subscription,
        ),
        (
            "orders",
            {
                "external_id": "o1",
                "learner": "ann",
                "placed_at": "2026-01-01T00:00:00Z",
                "lines": None,
            },
            "lines",
            Order,
        ),
    ],
)
def test_unhashable_or_null_values_are_refused_by_field(api, resource, item, field, model):
    LearnerFactory(external_id="ann")

    response = bulk(api, resource, [item])

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(error["index"], error["field"]) for error in errors] == [(0, field)]
    assert model.objects.count() == 0


def test_an_event_kind_that_is_not_a_string_is_refused(api):
    LearnerFactory(external_id="ann")
    item = {
        "idempotency_key": "k1",
        "learner": "ann",
        "kind": {},
        "occurred_at": "2026-01-01T00:00:00Z",
    }

    response = api.post("/api/v1/events/bulk/", {"items": [item]}, format="json")

    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(0, "kind")]
    assert Event.objects.count() == 0


def test_a_timestamp_before_year_one_in_utc_is_refused(api):
    """0001-01-01T00:00+20:21 is in year 0 once in UTC: it overflowed into a 500."""
    LearnerFactory(external_id="ann")
    early = "0001-01-01T00:00:00+20:21"
    event = {"idempotency_key": "k1", "learner": "ann", "kind": "login", "occurred_at": early}
    subscription = {
        "external_id": "s1",
        "learner": "ann",
        "plan": "pro",
        "status": "active",
        "mrr": "49.00",
        "started_at": early,
    }

    events = api.post("/api/v1/events/bulk/", {"items": [event]}, format="json")
    subscriptions = bulk(api, "subscriptions", [subscription])

    assert (events.status_code, subscriptions.status_code) == (400, 400)
    assert events.json()["errors"] == [
        {
            "index": 0,
            "field": "occurred_at",
            "reason": "is before 1990-01-01: timestamps must fall from 1990-01-01 up to "
            "(not including) 2200-01-01, UTC",
        }
    ]
    assert [(e["index"], e["field"]) for e in subscriptions.json()["errors"]] == [(0, "started_at")]
    assert (Event.objects.count(), Subscription.objects.count()) == (0, 0)


def test_an_unknown_api_path_answers_the_api_error_body(api):
    response = api.get("/api/v1/events/not-a-number/")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"index": None, "field": None, "reason": "Not found."}]}


def test_a_filter_time_with_an_offset_postgresql_refuses_is_compared_in_utc(api):
    """-18:59 is a valid ISO 8601 offset but beyond PostgreSQL's ±15:59: it was a 500."""
    response = api.get("/api/v1/subscriptions/?renews_before=2030-07-15T19:04:37-18:59")
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a\x00b", "field"),  # PostgreSQL raised on NUL (a 500): now refused by field
        ("\ud800", "body"),  # a lone surrogate: the JSON parser refuses the whole body
    ],
)
def test_text_no_database_can_store_is_refused(api, text, where):
    def post(path, items):  # JSON escapes (\\ud800), as a client's encoder writes them
        return api.post(path, json.dumps({"items": items}), content_type="application/json")

    learners = post("/api/v1/learners/bulk/", [{"external_id": "ann", "attributes": {"x": [text]}}])
    event = {
        "idempotency_key": "k1",
        "learner": "ann",
        "kind": "login",
        "occurred_at": "2026-01-01T00:00:00Z",
        "properties": {"note": text},
    }
    events = post("/api/v1/events/bulk/", [event])

    assert (learners.status_code, events.status_code) == (400, 400)
    expected = {"field": ([(0, "attributes")], [(0, "properties")]), "body": ([(None, None)],) * 2}
    assert [(e["index"], e["field"]) for e in learners.json()["errors"]] == expected[where][0]
    assert [(e["index"], e["field"]) for e in events.json()["errors"]] == expected[where][1]
    assert (Learner.objects.count(), Event.objects.count()) == (0, 0)
