"""One bad item in a bulk sync is a 400 naming its index and field; the good items of the same
batch are stored, exactly once (issue 18). Each case here was a 500 that lost the whole batch,
or was stored wrongly, before the fix."""

from datetime import UTC, datetime

import orjson
import pytest
from django.core.mail import EmailMultiAlternatives

from expansion.commerce.models import Order, Product, Subscription
from expansion.core.api.batch import ID_PATTERN, MAX_JSON_DEPTH
from learners.models import Course, Enrollment, Event, Learner
from templates.context import message_context
from templates.mail import email_build
from templates.messages import message_render, template_snapshot
from tests.factories.expansion import ProductFactory
from tests.factories.learners import CourseFactory, EventFactory, LearnerFactory
from tests.factories.templates import MessageTemplateFactory

pytestmark = pytest.mark.django_db

RANGE = "timestamps must fall from 1990-01-01 up to (not including) 2200-01-01, UTC"


def post(api, resource, items):
    """POST with orjson, so raw fragments (JSON deeper than Python's encoder goes) pass."""
    return api.post(
        f"/api/v1/{resource}/bulk/",
        orjson.dumps({"items": items}),
        content_type="application/json",
    )


def nested(depth: int, leaf: bytes = b"1") -> orjson.Fragment:
    """``{"a": {"a": … leaf …}}``, ``depth`` objects deep."""
    return orjson.Fragment(b'{"a":' * depth + leaf + b"}" * depth)


def event(key: str, **overrides):
    return {
        "idempotency_key": key,
        "learner": "ann",
        "kind": "login",
        "occurred_at": "2026-03-01T10:00:00Z",
        **overrides,
    }


def errors(response):
    return [(e["index"], e["field"], e["reason"]) for e in response.json()["errors"]]


@pytest.fixture
def ann():
    return LearnerFactory(external_id="ann")


# 1. An offset PostgreSQL refuses is stored in UTC; a time that overflows when shifted is refused.
def test_an_offset_beyond_postgresql_s_range_is_stored_in_utc(api, ann):
    response = post(
        api,
        "events",
        [
            event("k0"),
            event("k1", occurred_at="2026-03-01T10:00:00+16:00"),
            event("k2", occurred_at="9999-12-31T23:59:00-16:00"),
            event("k3", occurred_at="0001-01-01T00:00:00+16:00"),
            event("k4", occurred_at="2026-03-01T10:00:00-23:59"),
        ],
    )

    assert response.status_code == 400
    assert response.json() == {
        "accepted": 3,
        "duplicates": [],
        "errors": [
            {
                "index": 2,
                "field": "occurred_at",
                "reason": f"is on or after 2200-01-01: {RANGE}",
            },
            {"index": 3, "field": "occurred_at", "reason": f"is before 1990-01-01: {RANGE}"},
        ],
    }
    stored = dict(Event.objects.values_list("idempotency_key", "occurred_at"))
    assert stored == {
        "k0": datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        "k1": datetime(2026, 2, 28, 18, 0, tzinfo=UTC),
        "k4": datetime(2026, 3, 2, 9, 59, tzinfo=UTC),
    }


# 2. A NUL nested deeper than the old check's 64 levels.
def test_a_nul_at_any_depth_is_refused_by_field(api, ann):
    nul = b'"a\\u0000b"'
    learners = post(
        api,
        "learners",
        [
            {"external_id": "good-0", "attributes": {"plan": "pro"}},
            {"external_id": "deep-nul", "attributes": nested(70, nul)},
            {"external_id": "shallow-nul", "attributes": nested(MAX_JSON_DEPTH - 1, nul)},
            {"external_id": "good-1"},
        ],
    )
    events = post(
        api,
        "events",
        [event("k0"), event("k1", properties=nested(100, nul)), event("k2")],
    )

    assert (learners.status_code, events.status_code) == (400, 400)
    assert errors(learners) == [
        (1, "attributes", f"is nested deeper than {MAX_JSON_DEPTH} levels"),
        (2, "attributes", "must not contain NUL (\\u0000) characters"),
    ]
    assert learners.json()["created"] == 2
    assert errors(events) == [(1, "properties", f"is nested deeper than {MAX_JSON_DEPTH} levels")]
    assert events.json()["accepted"] == 2
    assert set(Learner.objects.values_list("external_id", flat=True)) == {"ann", "good-0", "good-1"}
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {"k0", "k2"}


# 3. JSON orjson parses (≤ 1,024 levels) but cannot encode (> 255): the item, not the batch.
@pytest.mark.parametrize("depth", [256, 1000])
def test_json_too_deep_to_encode_is_refused_by_item(api, ann, depth):
    learners = post(
        api,
        "learners",
        [
            {"external_id": "good-0"},
            {"external_id": "deep", "attributes": nested(depth)},
            {"external_id": "edge", "attributes": nested(MAX_JSON_DEPTH)},
        ],
    )
    events = post(
        api,
        "events",
        [
            event("k0", properties=nested(MAX_JSON_DEPTH)),
            event("k1", properties=nested(depth)),
            event("k2", properties={"x": orjson.Fragment(b"[" * depth + b"]" * depth)}),
            event("k3"),
        ],
    )

    too_deep = f"is nested deeper than {MAX_JSON_DEPTH} levels"
    assert (learners.status_code, events.status_code) == (400, 400)
    assert learners.json() == {
        "created": 2,
        "updated": 0,
        "errors": [{"index": 1, "field": "attributes", "reason": too_deep}],
    }
    assert errors(events) == [(1, "properties", too_deep), (2, "properties", too_deep)]
    assert events.json()["accepted"] == 2
    assert Learner.objects.count() == 3
    assert Learner.objects.get(external_id="edge").attributes == orjson.loads(
        b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH
    )
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {"k0", "k3"}


# 4. An email that grows past the column when lower-cased.
def test_an_email_too_long_once_lower_cased_is_refused(api):
    grows = "İ" * 242 + "@example.org"  # 254 characters; 'İ'.lower() is 2 code points
    assert (len(grows), len(grows.lower())) == (254, 496)

    response = post(
        api,
        "learners",
        [
            {"external_id": "a", "email": "Ann@Example.org"},
            {"external_id": "b", "email": grows},
            {"external_id": "c", "email": "İ" * 10 + "@example.org"},
        ],
    )

    assert response.status_code == 400
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "errors": [
            {
                "index": 1,
                "field": "email",
                "reason": "must be at most 254 characters once lower-cased, got 496",
            }
        ],
    }
    assert dict(Learner.objects.values_list("external_id", "email")) == {
        "a": "ann@example.org",
        "c": "i̇" * 10 + "@example.org",
    }


# 5. An offset with seconds was silently truncated.
def test_an_offset_with_seconds_is_refused(api, ann):
    CourseFactory(external_id="sql-1")
    seconds = "2026-01-01T10:00:00+05:30:15"
    reason = "has a time zone offset with seconds; offsets must be whole minutes, e.g. +05:30"

    events = post(api, "events", [event("k0", occurred_at=seconds), event("k1")])
    enrollments = post(
        api,
        "enrollments",
        [
            {"learner": "ann", "course": "sql-1", "enrolled_at": seconds},
            {"learner": "ann", "course": "sql-1", "enrolled_at": "2026-01-01T10:00:00+05:30"},
        ],
    )

    assert (events.status_code, enrollments.status_code) == (400, 400)
    assert errors(events) == [(0, "occurred_at", reason)]
    # The second enrolment is valid and is not a repeat: the first never passed.
    assert errors(enrollments) == [(0, "enrolled_at", reason)]
    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["k1"]
    assert list(Enrollment.objects.values_list("enrolled_at", flat=True)) == [
        datetime(2026, 1, 1, 4, 30, tzinfo=UTC)
    ]


# 6. A reused idempotency key with different content is a conflict, named; the same is a no-op.
def test_a_reused_idempotency_key_with_other_content_is_a_conflict(api, ann):
    EventFactory(
        learner=ann,
        idempotency_key="stored",
        kind="login",
        occurred_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        value=None,
        properties={"device": "web", "n": 1},
    )
    same = event(
        "stored", occurred_at="2026-03-01T12:00:00+02:00", properties={"n": 1.0, "device": "web"}
    )

    response = post(
        api,
        "events",
        [
            event("new"),
            event("stored", kind="resource_downloaded"),
            same,
            event("stored", properties={"device": "web", "n": True}),
            event("new", value=3),
        ],
    )

    assert response.status_code == 400
    assert response.json() == {
        "accepted": 1,
        "duplicates": [{"index": 2, "idempotency_key": "stored"}],
        "errors": [
            {
                "index": 1,
                "field": "idempotency_key",
                "reason": "idempotency key 'stored' was already used with different content "
                "(by an event already stored)",
            },
            {
                "index": 3,
                "field": "idempotency_key",
                "reason": "idempotency key 'stored' was already used with different content "
                "(by an event already stored)",
            },
            {
                "index": 4,
                "field": "idempotency_key",
                "reason": "idempotency key 'new' was already used with different content "
                "(by item 0 of this batch)",
            },
        ],
    }
    assert Event.objects.count() == 2
    assert Event.objects.get(idempotency_key="stored").kind == "login"
    # A replay of exactly what was stored stays a silent duplicate.
    replay = post(api, "events", [same, event("new")])
    assert (replay.status_code, replay.json()["errors"], replay.json()["accepted"]) == (200, [], 0)
    assert Event.objects.count() == 2


# 7. Clear messages at the ends of the ranges.
def test_out_of_range_values_say_so(api, ann):
    ProductFactory(sku="pro")
    events = post(
        api, "events", [event("k0", occurred_at="9999-12-31T23:59:59-01:00"), event("k1")]
    )
    subscriptions = api.post(
        "/api/v1/subscriptions/bulk/",
        # 2**64 is past orjson's 64-bit integers: it arrives as a float.
        b'{"items": [{"external_id": "s0", "learner": "ann", "plan": "pro", "mrr": "9.00",'
        b' "status": "active", "started_at": "2026-01-01T00:00:00Z",'
        b' "seats_used": 18446744073709551616},'
        b' {"external_id": "s1", "learner": "ann", "plan": "pro", "mrr": "9.00",'
        b' "status": "active", "started_at": "2026-01-01T00:00:00Z",'
        b' "quota_used": -18446744073709551616},'
        b' {"external_id": "s2", "learner": "ann", "plan": "pro", "mrr": "9.00",'
        b' "status": "active", "started_at": "2026-01-01T00:00:00Z", "seats_used": 3}]}',
        content_type="application/json",
    )

    assert (events.status_code, subscriptions.status_code) == (400, 400)
    assert errors(events) == [(0, "occurred_at", f"is on or after 2200-01-01: {RANGE}")]
    assert errors(subscriptions) == [
        (0, "seats_used", "is out of range (max 10000000), got 1.84467e+19"),
        (1, "quota_used", "is out of range (min 0), got -1.84467e+19"),
    ]
    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["k1"]
    assert list(Subscription.objects.values_list("external_id", "seats_used")) == [("s2", 3)]


# 8. Control characters in single-line text, and the send path for rows stored before.
CONTROL = "must not contain control characters or line breaks (found U+{:04X})"


def test_control_characters_in_names_and_titles_are_refused(api, ann):
    learners = post(
        api,
        "learners",
        [
            {"external_id": "a", "name": "Ann\r\nBcc: victim@example.org"},
            {"external_id": "b", "name": "Bo\tBo"},
            {"external_id": "c", "name": "Cy\u2028Cy"},
            {"external_id": "d", "name": "  Dee Ödegård 李  "},
            {"external_id": "e", "locale": "en\x1b"},
        ],
    )
    courses = post(
        api,
        "courses",
        [
            {"external_id": "c1", "title": "SQL\nBasics"},
            {
                "external_id": "c2",
                "title": "SQL",
                "modules": [{"external_id": "m1", "title": "In\x85tro", "position": 1}],
            },
            {"external_id": "c3", "title": "SQL", "learning_path": "Data\x7f"},
            {"external_id": "c4", "title": "Fine"},
        ],
    )
    products = post(
        api,
        "products",
        [
            {"sku": "p1", "name": "Pro\rplan", "kind": "plan", "price": "9.00"},
            {"sku": "p2", "name": "Pro plan", "kind": "plan", "price": "9.00"},
        ],
    )

    assert (learners.status_code, courses.status_code, products.status_code) == (400,) * 3
    assert errors(learners) == [
        (0, "name", CONTROL.format(0x0D)),
        (1, "name", CONTROL.format(0x09)),
        (2, "name", CONTROL.format(0x2028)),
        (4, "locale", CONTROL.format(0x1B)),
    ]
    assert errors(courses) == [
        (0, "title", CONTROL.format(0x0A)),
        (1, "modules[0].title", CONTROL.format(0x85)),
        (2, "learning_path", CONTROL.format(0x7F)),
    ]
    assert errors(products) == [(0, "name", CONTROL.format(0x0D))]
    assert dict(Learner.objects.values_list("external_id", "name")) == {
        "ann": ann.name,
        "d": "Dee Ödegård 李",
    }
    assert list(Course.objects.values_list("external_id", flat=True)) == ["c4"]
    assert list(Product.objects.values_list("sku", flat=True)) == ["p2"]


def test_a_stored_name_with_a_line_break_cannot_break_the_subject():
    """A row stored before the API refused line breaks: its email still builds."""
    learner = LearnerFactory(name="Ann\r\nBcc: victim@example.org")
    version = template_snapshot(template=MessageTemplateFactory(subject="Hi {{ learner.name }}!"))

    rendered = message_render(version=version, context=message_context(learner=learner))
    message = email_build(rendered=rendered, to="ann@example.org", unsubscribe_url="")

    assert isinstance(message, EmailMultiAlternatives)
    assert rendered.subject == "Hi Ann Bcc: victim@example.org!"
    headers = message.message()  # raised BadHeaderError before
    assert headers["Subject"] == "Hi Ann Bcc: victim@example.org!"
    assert headers["Bcc"] is None


# 9. One identifier check for every id field: reachable by its detail route, or refused.
BAD_IDS = [
    ("a/b", "must not contain '/' (identifiers are used in URLs)"),
    (" ann", "must not start or end with whitespace"),
    ("ann\u00a0", "must not start or end with whitespace"),
    ("a\x07b", CONTROL.format(0x07)),
    ("..", "must not be '.' or '..' (identifiers are used in URLs)"),
    ("", "must not be empty"),
    ("x" * 256, "must be at most 255 characters, got 256"),
]


def test_every_id_field_refuses_ids_its_detail_route_cannot_reach(api, ann):
    CourseFactory(external_id="sql-1")
    ProductFactory(sku="pro")
    learners = post(
        api,
        "learners",
        [{"external_id": bad} for bad, _ in BAD_IDS]
        + [{"external_id": "a b"}, {"external_id": "ünï-çødé"}, {"external_id": "x" * 255}],
    )
    references = post(
        api,
        "enrollments",
        [{"learner": "a/b", "course": "sql-1", "enrolled_at": "2026-01-01T00:00:00Z"}]
        + [{"learner": "ann", "course": "sql-1 ", "enrolled_at": "2026-01-01T00:00:00Z"}]
        + [{"learner": "ann", "course": "sql-1", "enrolled_at": "2026-01-01T00:00:00Z"}],
    )
    products = post(
        api,
        "products",
        [
            {"sku": "a/b", "name": "X", "kind": "addon", "price": "1.00"},
            {"sku": "x" * 101, "name": "X", "kind": "addon", "price": "1.00"},
            {"sku": "ok", "name": "X", "kind": "addon", "price": "1.00", "course": "sql-1\n"},
            {"sku": "ok-2", "name": "X", "kind": "addon", "price": "1.00", "course": "sql-1"},
        ],
    )
    orders = post(
        api,
        "orders",
        [
            {
                "external_id": "o1",
                "learner": "ann",
                "placed_at": "2026-01-01T00:00:00Z",
                "lines": [{"external_id": "1", "sku": "pro/", "unit_price": "1.00"}],
            },
            {
                "external_id": "o2",
                "learner": "ann",
                "placed_at": "2026-01-01T00:00:00Z",
                "lines": [{"external_id": "1", "sku": "pro", "unit_price": "1.00"}],
            },
        ],
    )
    subscriptions = post(
        api,
        "subscriptions",
        [
            {
                "external_id": "s/1",
                "account": " acme",
                "plan": "pro",
                "mrr": "9.00",
                "status": "active",
                "started_at": "2026-01-01T00:00:00Z",
            },
            {
                "external_id": "s1",
                "account": "acme",
                "plan": "pro",
                "mrr": "9.00",
                "status": "active",
                "started_at": "2026-01-01T00:00:00Z",
            },
        ],
    )
    events = post(
        api,
        "events",
        [
            event("k0", learner="ann/"),
            event("k1", course="sql-1", module="m 1 "),
            event("k2", learner="ann", course="sql-1"),
        ],
    )

    assert errors(learners) == [(i, "external_id", reason) for i, (_, reason) in enumerate(BAD_IDS)]
    assert learners.json()["created"] == 3
    assert errors(references) == [
        (0, "learner", BAD_IDS[0][1]),
        (1, "course", "must not start or end with whitespace"),
    ]
    assert errors(products) == [
        (0, "sku", BAD_IDS[0][1]),
        (1, "sku", "must be at most 100 characters, got 101"),
        (2, "course", CONTROL.format(0x0A)),
    ]
    assert errors(orders) == [(0, "lines[0].sku", BAD_IDS[0][1])]
    assert errors(subscriptions) == [
        (0, "external_id", BAD_IDS[0][1]),
        (0, "account", "must not start or end with whitespace"),
    ]
    assert errors(events) == [
        (0, "learner", f"must be a learner's external_id: {BAD_IDS[0][1]}"),
        (
            1,
            "module",
            "must be a module's external_id or null: must not start or end with whitespace",
        ),
    ]
    assert Learner.objects.count() == 4
    assert Enrollment.objects.count() == 1
    assert set(Product.objects.values_list("sku", flat=True)) == {"pro", "ok-2"}
    assert list(Order.objects.values_list("external_id", flat=True)) == ["o2"]
    assert list(Subscription.objects.values_list("external_id", flat=True)) == ["s1"]
    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["k2"]
    # What was accepted is reachable by its detail route.
    for external_id in ("a b", "ünï-çødé", "x" * 255):
        assert api.get(f"/api/v1/learners/{external_id}/").status_code == 200


def test_the_schema_documents_the_identifier_rules(api):
    schema = api.get("/api/schema/?format=json").json()

    def item(path):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return body["schema"]["properties"]["items"]["items"]["properties"]

    learner = item("/api/v1/learners/bulk/")["external_id"]
    assert (learner["pattern"], learner["minLength"], learner["maxLength"]) == (ID_PATTERN, 1, 255)
    assert "no '/'" in learner["description"]
    assert item("/api/v1/products/bulk/")["sku"]["maxLength"] == 100
    assert item("/api/v1/events/bulk/")["learner"]["pattern"] == ID_PATTERN
