from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from django.test import override_settings

from learners import ingest
from learners.models import Event
from tests.factories.learners import CourseFactory, LearnerFactory, ModuleFactory

URL = "/api/v1/events/bulk/"
pytestmark = pytest.mark.django_db


def event(n: int, **overrides):
    item = {
        "idempotency_key": f"k-{n}",
        "learner": "alice",
        "kind": "login",
        "occurred_at": "2026-03-01T10:00:00+02:00",
    }
    item.update(overrides)
    return item


@pytest.fixture
def alice():
    return LearnerFactory(external_id="alice")


def post(api, items):
    return api.post(URL, {"items": items}, format="json")


def test_batch_is_stored_with_utc_times_and_resolved_references(api, alice):
    course = CourseFactory(external_id="sql-1")
    module = ModuleFactory(course=course, external_id="m8", position=8, is_final=True)
    response = post(
        api,
        [
            event(1),
            event(
                2,
                kind="assessment_submitted",
                value=87.5,
                course="sql-1",
                module="m8",
                properties={"attempt": 2},
            ),
            event(3, kind="custom.webinar_attended", occurred_at="2026-03-01T08:00:00Z"),
        ],
    )
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "duplicates": [], "errors": []}
    stored = {e.idempotency_key: e for e in Event.objects.all()}
    assert set(stored) == {"k-1", "k-2", "k-3"}
    assert stored["k-1"].occurred_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert stored["k-1"].learner_id == alice.pk
    assert stored["k-2"].value == 87.5
    assert stored["k-2"].course_id == course.pk
    assert stored["k-2"].module_id == module.pk
    assert stored["k-2"].properties == {"attempt": 2}
    assert stored["k-3"].kind == "custom.webinar_attended"
    assert stored["k-1"].received_at is not None


def test_replayed_batch_creates_nothing_and_names_the_duplicates(api, alice):
    items = [event(n) for n in range(5)]
    assert post(api, items).json()["accepted"] == 5
    response = post(api, items)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 0,
        "duplicates": [{"index": n, "idempotency_key": f"k-{n}"} for n in range(5)],
        "errors": [],
    }
    assert Event.objects.count() == 5


def test_key_repeated_inside_a_batch_is_stored_once(api, alice):
    # The same event in another offset is the same event.
    repeat = event(1, occurred_at="2026-03-01T08:00:00Z")
    response = post(api, [event(1), event(2), repeat])
    assert response.json() == {
        "accepted": 2,
        "duplicates": [{"index": 2, "idempotency_key": "k-1"}],
        "errors": [],
    }
    assert Event.objects.get(idempotency_key="k-1").kind == "login"


def test_key_repeated_inside_a_batch_with_other_content_is_a_conflict(api, alice):
    response = post(api, [event(1), event(2), event(1, kind="resource_downloaded")])
    assert response.status_code == 400
    assert response.json() == {
        "accepted": 2,
        "duplicates": [],
        "errors": [
            {
                "index": 2,
                "field": "idempotency_key",
                "reason": "idempotency key 'k-1' was already used with different content "
                "(by item 0 of this batch)",
            }
        ],
    }
    assert Event.objects.get(idempotency_key="k-1").kind == "login"


def test_bad_items_are_named_and_good_ones_kept(api, alice):
    assert post(api, [event(6, idempotency_key="already")]).status_code == 200
    response = post(
        api,
        [
            event(0),
            event(1, occurred_at="2026-03-01T10:00:00"),
            event(2, learner="nobody"),
            event(3, value="high"),
            event(4),
            event(5, kind="teleported"),
            event(6, idempotency_key="already"),
        ],
    )
    assert response.status_code == 400
    body = response.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == [{"index": 6, "idempotency_key": "already"}]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "occurred_at"),
        (2, "learner"),
        (3, "value"),
        (5, "kind"),
    ]
    assert body["errors"][1]["reason"] == "unknown learner 'nobody'"
    assert "time zone" in body["errors"][0]["reason"]
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {
        "already",
        "k-0",
        "k-4",
    }


@pytest.mark.parametrize(
    ("override", "field", "reason_part"),
    [
        ({"occurred_at": "2026-13-45T00:00:00Z"}, "occurred_at", "not an ISO 8601"),
        ({"occurred_at": "1970-01-01T00:00:00Z"}, "occurred_at", "before 1990"),
        ({"occurred_at": "2150-01-01T00:00:00Z"}, "occurred_at", "in the future"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", "on or after 2200-01-01"),
        ({"occurred_at": 1700000000}, "occurred_at", "ISO 8601 string"),
        ({"value": 1e300}, "value", "finite number"),
        ({"value": True}, "value", "number or null"),
        ({"idempotency_key": ""}, "idempotency_key", "1 to 200"),
        ({"idempotency_key": "x" * 201}, "idempotency_key", "1 to 200"),
        ({"learner": 42}, "learner", "external_id"),
        ({"properties": []}, "properties", "JSON object"),
        ({"properties": {"blob": "x" * 20000}}, "properties", "16384 bytes"),
        ({"surprise": 1}, "surprise", "not a known field"),
        ({"kind": "assessment_submitted"}, "value", "required for assessment_submitted"),
        ({"kind": "assessment_submitted", "value": 140}, "value", "between 0 and 100"),
        (
            {"kind": "usage_reported", "properties": {"metric": "api", "used": 5}},
            "properties.limit",
            "required",
        ),
        ({"kind": "community_question"}, "properties.text", "required"),
        ({"module": "m1"}, "module", "needs course"),
        ({"course": "nope"}, "course", "unknown course"),
    ],
)
def test_each_bad_field_is_refused_with_its_reason(api, alice, override, field, reason_part):
    response = post(api, [event(1, **override)])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["index"] == 0
    assert error["field"] == field
    assert reason_part in error["reason"]
    assert Event.objects.count() == 0


def test_missing_required_fields_are_each_listed(api, alice):
    response = post(api, [{"kind": "login"}])
    assert response.status_code == 400
    assert [(e["field"], e["reason"]) for e in response.json()["errors"]] == [
        ("idempotency_key", "is required"),
        ("learner", "is required"),
        ("occurred_at", "is required"),
    ]


def test_unknown_module_in_known_course(api, alice):
    CourseFactory(external_id="sql-1")
    response = post(api, [event(1, course="sql-1", module="m99")])
    assert response.json()["errors"] == [
        {"index": 0, "field": "module", "reason": "unknown module 'm99' in course 'sql-1'"}
    ]


@override_settings(API_BATCH_LIMIT=3)
def test_oversize_batch_is_refused_whole(api, alice):
    response = post(api, [event(n) for n in range(4)])
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"index": None, "field": "items", "reason": "holds 4 items; the limit is 3 per request"}
        ]
    }
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], 'the body must be a JSON object {"items": [...]}, got array'),
        ({"items": {}}, "must be an array, got object"),
        ({"items": []}, "must hold at least one item"),
        ({"events": [1]}, "must be an array, got null"),
    ],
)
def test_bad_envelope(api, body, reason):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == reason


@override_settings(API_MAX_BODY_BYTES=1000)
def test_body_over_the_byte_limit_is_a_413(api, alice):
    response = post(api, [event(n) for n in range(20)])
    assert response.status_code == 413
    assert response.json()["errors"][0]["reason"].startswith(
        "The request body exceeds 1,000 bytes (API_MAX_BODY_BYTES)"
    )
    assert Event.objects.count() == 0


def test_malformed_json_is_a_400(api):
    response = api.generic("POST", URL, b'{"items": [', content_type="application/json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["reason"].startswith("Malformed JSON")


def test_wrong_content_type_is_a_415(api):
    response = api.generic(
        "POST", URL, b"items=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["errors"][0]["reason"]
    assert Event.objects.count() == 0


def test_non_object_item(api, alice):
    response = post(api, ["login", event(1)])
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 0, "field": None, "reason": "must be a JSON object, got string"}
    ]
    assert Event.objects.count() == 1


def test_list_filters_and_detail(api, alice):
    bob = LearnerFactory(external_id="bob")
    post(api, [event(1), event(2, kind="resource_downloaded"), event(3, learner="bob")])
    listed = api.get("/api/v1/events/", {"learner": "alice"}).json()
    assert sorted(e["idempotency_key"] for e in listed["results"]) == ["k-1", "k-2"]
    by_kind = api.get("/api/v1/events/", {"kind": "resource_downloaded"}).json()
    assert [e["idempotency_key"] for e in by_kind["results"]] == ["k-2"]
    one = Event.objects.get(idempotency_key="k-3")
    detail = api.get(f"/api/v1/events/{one.pk}/").json()
    assert detail["learner"] == "bob"
    assert detail["occurred_at"] == "2026-03-01T08:00:00Z"
    assert bob.pk == one.learner_id


def test_pagination_is_cursor_based(api, alice):
    post(api, [event(n) for n in range(5)])
    first = api.get("/api/v1/events/", {"page_size": 2}).json()
    assert len(first["results"]) == 2
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()
    keys = [e["idempotency_key"] for page in (first, second, third) for e in page["results"]]
    assert sorted(keys) == [f"k-{n}" for n in range(5)]
    assert third["next"] is None
    assert third["next_cursor"] is None
    # The bare cursor walks the same pages as the links.
    assert first["previous_cursor"] is None
    assert first["next_cursor"] == parse_qs(urlsplit(first["next"]).query)["cursor"][0]
    by_cursor = api.get("/api/v1/events/", {"page_size": 2, "cursor": first["next_cursor"]})
    assert by_cursor.json()["results"] == second["results"]
    back = api.get("/api/v1/events/", {"page_size": 2, "cursor": second["previous_cursor"]})
    assert back.json()["results"] == first["results"]


def test_response_body_is_json_bytes(api, alice):
    response = post(api, [event(1)])
    assert orjson.loads(response.content) == {"accepted": 1, "duplicates": [], "errors": []}


def test_stale_cached_learner_id_is_resolved_again(api):
    old = LearnerFactory(external_id="carol")
    assert post(api, [event(1, learner="carol")]).json()["accepted"] == 1
    assert ingest._LEARNER_IDS.get("carol") == old.pk
    old.delete()
    new = LearnerFactory(external_id="carol")
    response = post(api, [event(2, learner="carol")])
    assert response.json() == {"accepted": 1, "duplicates": [], "errors": []}
    assert Event.objects.get(idempotency_key="k-2").learner_id == new.pk
    assert ingest._LEARNER_IDS.get("carol") == new.pk
