"""Inputs schemathesis found crashing the API (500): each now a 400 naming item and field,
and nothing written."""

import pytest

from expansion.models import Order, Product, Subscription
from learners.models import Event
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
        {"index": 0, "field": "occurred_at", "reason": "is before 1990-01-01"}
    ]
    assert [(e["index"], e["field"]) for e in subscriptions.json()["errors"]] == [(0, "started_at")]
    assert (Event.objects.count(), Subscription.objects.count()) == (0, 0)


def test_an_unknown_api_path_answers_the_api_error_body(api):
    response = api.get("/api/v1/events/not-a-number/")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"index": None, "field": None, "reason": "Not found."}]}
