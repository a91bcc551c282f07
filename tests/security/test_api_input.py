"""Request-level hostile input to /api/v1/ (issue 18): cursors, path ids, query strings and
bodies that the API used to crash on (500), read differently from what was sent, or silently
ignore. Each is now a 4xx in the one error shape, naming what is wrong, and writes nothing."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import orjson
import pytest

from campaigns.models import Send
from campaigns.widget import widget_token
from expansion.commerce.apikeys import api_key_issue
from expansion.commerce.models import Order, Product, Subscription
from learners.models import Course, Learner
from tests.factories.expansion import OrderFactory, ProductFactory, SubscriptionFactory
from tests.factories.learners import CourseFactory, LearnerFactory

pytestmark = pytest.mark.django_db

LISTS = ["learners", "courses", "enrollments", "events", "products", "orders", "subscriptions"]


def error(reason: str, field: str | None = None, index: int | None = None) -> dict:
    return {"errors": [{"index": index, "field": field, "reason": reason}]}


def cursor(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


# --- 1. cursors --------------------------------------------------------------------------

BAD_CURSORS = [
    cursor("p=abc"),
    cursor("p="),
    cursor("p=1.5"),
    cursor("p=\x00"),
    cursor("p=-1"),
    cursor("p=99999999999999999999"),  # past bigint
    cursor("o=-1"),
    cursor("o=abc"),
    cursor("r=2"),
    cursor("p=1&p=2"),
    cursor("x=1"),
    "%00",  # not base64 at all: was read as no cursor (page one)
    "!!!!",
    "%C3%A9",  # non-ASCII
    "cD1hYmM",  # bad padding
]


@pytest.mark.parametrize("resource", LISTS)
@pytest.mark.parametrize("bad", BAD_CURSORS)
def test_a_tampered_cursor_is_404_invalid_cursor_on_every_list(api, resource, bad):
    response = api.get(f"/api/v1/{resource}/?cursor={bad}")

    assert response.status_code == 404
    assert response.json() == error("Invalid cursor", "cursor")


@pytest.mark.parametrize("resource", LISTS)
def test_the_cursors_the_api_writes_still_page(api, resource):
    LearnerFactory.create_batch(3) if resource == "learners" else None
    CourseFactory.create_batch(3) if resource == "courses" else None
    ProductFactory.create_batch(3) if resource == "products" else None
    OrderFactory.create_batch(3) if resource == "orders" else None
    SubscriptionFactory.create_batch(3) if resource == "subscriptions" else None

    first = api.get(f"/api/v1/{resource}/", {"page_size": 1}).json()
    assert first["previous"] is None
    if first["next"] is None:  # enrollments and events: none made here
        assert first["results"] == []
        return
    second = api.get(first["next"])
    assert second.status_code == 200
    back = api.get(second.json()["previous"])
    assert back.status_code == 200
    assert back.json()["results"] == first["results"]


# --- 2. NULs and odd values in paths and query parameters ----------------------------------

DETAIL_PATHS = [
    ("get", "/api/v1/learners/{}/"),
    ("get", "/api/v1/learners/{}/scores/"),
    ("get", "/api/v1/learners/{}/recommendations/"),
    ("get", "/api/v1/learners/{}/offers/"),
    ("post", "/api/v1/learners/{}/widget-token/"),
    ("get", "/api/v1/courses/{}/"),
    ("get", "/api/v1/products/{}/"),
    ("get", "/api/v1/products/{}/recommendations/"),
    ("get", "/api/v1/orders/{}/"),
    ("get", "/api/v1/subscriptions/{}/"),
]


@pytest.mark.parametrize(("method", "path"), DETAIL_PATHS)
@pytest.mark.parametrize("segment", ["%00", "ann%00", "%1F", "%7F"])
def test_a_control_character_in_a_path_id_is_404(api, method, path, segment):
    """PostgreSQL refuses NUL in text: this was a 500 on every lookup by external id."""
    response = getattr(api, method)(path.format(segment))

    assert response.status_code == 404
    assert response.json() == error("Not found.")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("moment=%00", "Null characters are not allowed."),
        ("moment=no%20slug", "must be a slug: letters, digits, - and _"),
    ],
)
def test_an_unreadable_moment_is_400(api, query, reason):
    LearnerFactory(external_id="ann")

    response = api.get(f"/api/v1/learners/ann/offers/?{query}")

    assert response.status_code == 400
    assert response.json()["errors"][0] == {"index": None, "field": "moment", "reason": reason}


@pytest.mark.parametrize("query", ["moment=%00", "moment=no%20slug", "moment=" + "m" * 41])
def test_the_widget_refuses_an_unreadable_moment_and_changes_nothing(client, query):
    """A NUL in the widget's moment was a 500 on PostgreSQL."""
    learner = LearnerFactory(external_id="ann")

    response = client.get(f"/w/offers/?{query}", HTTP_X_WIDGET_TOKEN=widget_token(learner))

    assert (response.status_code, response.json()) == (
        400,
        {"detail": "moment must be a journey moment's slug"},
    )
    assert Send.objects.count() == 0


@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A3", "%EF%BC%93", "1.0", "-1", "0", "21", ""])
@pytest.mark.parametrize(
    "path", ["/api/v1/learners/ann/recommendations/", "/api/v1/products/pro/recommendations/"]
)
def test_a_limit_that_is_not_1_to_20_in_ascii_digits_is_400(api, path, limit):
    """'²' passes str.isdigit() and then int() refused it: a 500."""
    LearnerFactory(external_id="ann")
    ProductFactory(sku="pro")

    response = api.get(f"{path}?limit={limit}")

    assert response.status_code == 400
    assert response.json() == error("must be a whole number from 1 to 20", "limit")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("end=0001-01-05", "end"),
        ("start=0001-01-01", "start"),
        ("end=9999-12-31", "end"),
        ("start=9999-01-01&end=9999-12-31", "start"),
    ],
)
def test_metrics_dates_outside_the_calendar_window_are_400(api, query, field):
    response = api.get(f"/api/v1/metrics/?{query}")

    assert response.status_code == 400
    assert response.json() == error("must be from 1900-01-01 to 2999-12-31", field)


# --- 3. ids the detail routes cannot reach are refused at write ----------------------------

BAD_IDS = [
    ("a/b", "must not contain '/' (identifiers are used in URLs)"),
    (" ann", "must not start or end with whitespace"),
    ("ann ", "must not start or end with whitespace"),
    ("a\tb", "must not contain control characters or line breaks (found U+0009)"),
    ("a\x85b", "must not contain control characters or line breaks (found U+0085)"),
    ("bulk", "'bulk' is reserved: it names an API route"),
    ("..", "must not be '.' or '..' (identifiers are used in URLs)"),
]

RESOURCES = [
    ("learners", "external_id", Learner, {}),
    ("courses", "external_id", Course, {"title": "SQL"}),
    ("products", "sku", Product, {"name": "Pro", "kind": "course", "price": "49.00"}),
    (
        "orders",
        "external_id",
        Order,
        {
            "learner": "ann",
            "placed_at": "2026-01-01T00:00:00Z",
            "lines": [{"external_id": "l1", "sku": "pro", "unit_price": "49.00"}],
        },
    ),
    (
        "subscriptions",
        "external_id",
        Subscription,
        {
            "learner": "ann",
            "plan": "pro",
            "mrr": "49.00",
            "status": "active",
            "started_at": "2026-01-01T00:00:00Z",
        },
    ),
]


@pytest.mark.parametrize(("resource", "field", "model", "rest"), RESOURCES)
@pytest.mark.parametrize(("bad", "reason"), BAD_IDS)
def test_an_id_its_detail_route_cannot_reach_is_refused_at_write(
    api, resource, field, model, rest, bad, reason
):
    LearnerFactory(external_id="ann")
    ProductFactory(sku="pro")
    before = model.objects.count()
    good = "ok-1" if resource != "products" else "ok-sku"
    items = [{field: good, **rest}, {field: bad, **rest}]
    if resource == "orders":
        items[1]["lines"] = [{"external_id": "l2", "sku": "pro", "unit_price": "49.00"}]

    response = api.post(f"/api/v1/{resource}/bulk/", {"items": items}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "created": 1,
        "updated": 0,
        "errors": [{"index": 1, "field": field, "reason": reason}],
    }
    assert model.objects.count() == before + 1
    assert model.objects.filter(**{field: good}).count() == 1
    assert api.get(f"/api/v1/{resource}/{good}/").status_code == 200


@pytest.mark.parametrize(("resource", "field", "model", "rest"), RESOURCES)
def test_an_id_with_url_reserved_characters_is_reachable_by_its_route(
    api, resource, field, model, rest
):
    LearnerFactory(external_id="ann")
    ProductFactory(sku="pro")
    odd = "Ann Smith+é?%#&;=[]"

    created = api.post(
        f"/api/v1/{resource}/bulk/", {"items": [{field: odd, **rest}]}, format="json"
    )
    assert created.status_code == 200, created.json()

    response = api.get(f"/api/v1/{resource}/{quote(odd, safe='')}/")
    assert response.status_code == 200
    assert response.json()[field] == odd


# --- 4. chunked bodies ------------------------------------------------------------------


def _chunked_post(server_url: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    """POST ``body`` in two chunks, the whole request in one write (the server answers before
    reading a body it cannot take, and a client still sending would see a broken pipe)."""
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    url = urlsplit(server_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=chunks + b"0\r\n\r\n",
            headers={**headers, "Transfer-Encoding": "chunked"},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_411_length_required_on_a_live_server(live_server):
    """Under WSGI a chunked body has no CONTENT_LENGTH and was read as empty: 'got null'."""
    key = api_key_issue(name="chunked", scopes=["read", "write"])
    headers = {"Authorization": f"Bearer {key.raw_key}", "Content-Type": "application/json"}
    body = orjson.dumps({"items": [{"external_id": "ann"}]})

    status, content = _chunked_post(live_server.url, "/api/v1/learners/bulk/", body, headers)

    assert status == 411
    assert orjson.loads(content) == error(
        "Transfer-Encoding is not supported: send the body with a Content-Length header "
        "(not chunked)"
    )
    assert Learner.objects.count() == 0

    url = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("POST", "/api/v1/learners/bulk/", body=body, headers=headers)
    response = connection.getresponse()
    assert (response.status, orjson.loads(response.read())) == (
        200,
        {"created": 1, "updated": 0, "errors": []},
    )
    connection.close()
    assert list(Learner.objects.values_list("external_id", flat=True)) == ["ann"]


def test_a_transfer_encoding_header_is_411_in_process(api):
    response = api.post(
        "/api/v1/learners/bulk/",
        b'{"items": [{"external_id": "ann"}]}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response.json()["errors"][0]["reason"].startswith("Transfer-Encoding is not supported")
    assert Learner.objects.count() == 0


# --- 5. bodies: duplicate keys, compression, other encodings ----------------------------


def _post_raw(api, body: bytes, path: str = "/api/v1/learners/bulk/", **extra):
    content_type = extra.pop("content_type", "application/json")
    return api.post(path, body, content_type=content_type, **extra)


@pytest.mark.parametrize(
    ("body", "index", "field", "key"),
    [
        (
            b'{"items": [{"external_id": "a"}], "items": [{"external_id": "b"}]}',
            None,
            "items",
            "items",
        ),
        (
            b'{"items": [{"external_id": "a"}, {"external_id": "b", "name": "B", "name": "C"}]}',
            1,
            "name",
            "name",
        ),
        (
            b'{"items": [{"external_id": "a", "attributes": {"plan": "x", "plan": "y"}}]}',
            0,
            "attributes.plan",
            "plan",
        ),
        (
            b'{"items": [{"external_id": "a", "attributes": {"l": [{"k": 1, "k": 2}]}}]}',
            0,
            "attributes.l[0].k",
            "k",
        ),
        # Escaped colons elsewhere do not hide a repeat (the counts net them out).
        (
            b'{"items": [{"external_id": "a", "attributes": '
            b'{"x\\u003a": 1, "y\\u003A": 2, "k": 1, "k": 2}}]}',
            0,
            "attributes.k",
            "k",
        ),
        # The same key spelled with an escape is still the same key.
        (
            b'{"items": [{"external_id": "a", "attributes": {"a:b": 1, "a\\u003ab": 2}}]}',
            0,
            "attributes.a:b",
            "a:b",
        ),
    ],
)
def test_a_key_given_twice_in_one_object_is_refused_naming_it(api, body, index, field, key):
    response = _post_raw(api, body)

    assert response.status_code == 400
    reason = f"the key {key!r} appears more than once in one object; send each key once"
    assert response.json() == error(reason, field, index)
    assert Learner.objects.count() == 0


@pytest.mark.parametrize(
    "attributes",
    [
        {"url": "https://example.org:8443/a:b", "a\\u003ab": "c:d"},  # a literal '\u003a'
        {"x\\\\u003a": 1, "time": "09:30"},
    ],
)
def test_colons_and_escapes_in_strings_are_not_taken_for_repeated_keys(api, attributes):
    body = orjson.dumps({"items": [{"external_id": "a", "attributes": attributes}]})

    response = _post_raw(api, body)

    assert response.status_code == 200
    assert Learner.objects.get(external_id="a").attributes == attributes


def test_an_escaped_colon_key_next_to_its_plain_spelling_is_stored_once_each(api):
    body = b'{"items": [{"external_id": "a", "attributes": {"a\\u003a": 1, "a;": 2}}]}'

    response = _post_raw(api, body)

    assert response.status_code == 200
    assert Learner.objects.get(external_id="a").attributes == {"a:": 1, "a;": 2}


@pytest.mark.parametrize("depth", [300, 1000])
def test_an_item_nested_past_orjsons_writing_depth_is_refused_alone(api, depth):
    """orjson reads 1,024 levels but writes 254: the item is refused by the bulk checks, by
    index and field, and the good item beside it is stored."""
    deep = b'{"items": [{"external_id": "good"}, {"external_id": "a", "attributes": '
    deep += b'{"a": ' * depth + b"1" + b"}" * depth + b"}]}"

    response = _post_raw(api, deep)

    assert (response.status_code, response.json()) == (
        400,
        {
            "created": 1,
            "updated": 0,
            "errors": [
                {"index": 1, "field": "attributes", "reason": "is nested deeper than 32 levels"}
            ],
        },
    )
    assert list(Learner.objects.values_list("external_id", flat=True)) == ["good"]


def test_a_repeated_key_beside_a_deep_item_is_still_found(api):
    deep = b'{"items": [{"external_id": "x", "external_id": "y"}, {"external_id": "a", '
    deep += b'"attributes": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}]}"

    response = _post_raw(api, deep)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "external_id",
            "reason": "the key 'external_id' appears more than once in one object; send each "
            "key once",
        }
    ]
    assert Learner.objects.count() == 0


BODY = b'{"items": [{"external_id": "ann"}]}'
NOT_UTF8 = (
    "The body is not UTF-8 (compressed, or UTF-16?): send the body as uncompressed UTF-8 JSON."
)


@pytest.mark.parametrize(
    ("body", "extra", "status", "reason"),
    [
        (
            gzip.compress(BODY),
            {"HTTP_CONTENT_ENCODING": "gzip"},
            415,
            "Content-Encoding 'gzip' is not supported: send the body as uncompressed UTF-8 JSON.",
        ),
        (
            BODY,
            {"HTTP_CONTENT_ENCODING": "br"},
            415,
            "Content-Encoding 'br' is not supported: send the body as uncompressed UTF-8 JSON.",
        ),
        (gzip.compress(BODY), {}, 400, NOT_UTF8),
        (BODY.decode().encode("utf-16"), {}, 400, NOT_UTF8),
        (BODY.decode().encode("utf-16-le"), {}, 400, NOT_UTF8),
        (
            BODY.decode().encode("utf-16"),
            {"content_type": "application/json; charset=utf-16"},
            415,
            "charset 'utf-16' is not supported: send the body as uncompressed UTF-8 JSON.",
        ),
    ],
)
def test_compressed_or_non_utf8_bodies_say_what_is_accepted(api, body, extra, status, reason):
    response = _post_raw(api, body, **extra)

    assert response.status_code == status
    assert response.json() == error(reason)
    assert Learner.objects.count() == 0


@pytest.mark.parametrize("extra", [{"HTTP_CONTENT_ENCODING": "identity"}, {}])
def test_plain_utf8_json_is_still_read(api, extra):
    response = _post_raw(api, BODY, content_type="application/json; charset=UTF-8", **extra)

    assert response.status_code == 200
    assert Learner.objects.count() == 1


# --- 6. query strings: unknown, repeated, unreadable -----------------------------------

FILTERS = {
    "learners": ["account", "email", "marketing_opt_in", "updated_after"],
    "courses": ["creator", "learning_path"],
    "enrollments": ["completed", "course", "learner"],
    "events": ["course", "kind", "learner", "occurred_after", "occurred_before"],
    "products": ["is_active", "kind"],
    "orders": ["learner", "placed_after", "placed_before"],
    "subscriptions": ["account", "learner", "renews_before", "status"],
}


@pytest.mark.parametrize("resource", LISTS)
def test_an_unknown_query_parameter_is_400_naming_it_on_every_list(api, resource):
    LearnerFactory(external_id="ann")

    response = api.get(f"/api/v1/{resource}/?colour=red")

    listing = ", ".join(sorted([*FILTERS[resource], "cursor", "format", "page_size"]))
    assert response.status_code == 400
    assert response.json() == error(
        f"is not a query parameter of this list; use {listing}", "colour"
    )


@pytest.mark.parametrize("resource", LISTS)
def test_a_parameter_given_twice_is_400(api, resource):
    name = FILTERS[resource][0]

    response = api.get(f"/api/v1/{resource}/?{name}=a&{name}=b")

    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "index": None,
        "field": name,
        "reason": "is given more than once; give it once",
    }


@pytest.mark.parametrize(
    ("resource", "name"),
    [
        ("learners", "marketing_opt_in"),
        ("enrollments", "completed"),
        ("products", "is_active"),
    ],
)
@pytest.mark.parametrize("value", ["maybe", "yes", "2", "%00", "TRUE "])
def test_a_boolean_that_is_not_true_or_false_is_400(api, resource, name, value):
    response = api.get(f"/api/v1/{resource}/?{name}={value}")

    assert response.status_code == 400
    assert response.json() == error("must be true or false", name)


@pytest.mark.parametrize("value", ["true", "True", "1", "false", "False", "0"])
def test_booleans_still_filter(api, value):
    ProductFactory(sku="on", is_active=True)
    ProductFactory(sku="off", is_active=False)

    response = api.get(f"/api/v1/products/?is_active={value}")

    expected = ["on"] if value in ("true", "True", "1") else ["off"]
    assert [p["sku"] for p in response.json()["results"]] == expected


DATE_FILTERS = [
    ("learners", "updated_after"),
    ("events", "occurred_after"),
    ("events", "occurred_before"),
    ("orders", "placed_after"),
    ("orders", "placed_before"),
    ("subscriptions", "renews_before"),
]


@pytest.mark.parametrize(("resource", "name"), DATE_FILTERS)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("garbage", "must be an ISO 8601 date-time such as 2026-05-01T09:30:00Z"),
        ("2026-13-01T00:00:00Z", "must be an ISO 8601 date-time such as 2026-05-01T09:30:00Z"),
        (
            "2026-01-01T00:00:00%2B24:00",
            "must be an ISO 8601 date-time such as 2026-05-01T09:30:00Z",
        ),
        (
            "9999-12-31T23:00:00-05:00",
            "is out of range: must fall between years 1 and 9999 in UTC",
        ),
        (
            "0001-01-01T00:00:00%2B05:00",
            "is out of range: must fall between years 1 and 9999 in UTC",
        ),
    ],
)
def test_a_bad_date_filter_names_the_query_parameter(api, resource, name, value, reason):
    """The overflow named the model field (renews_at) instead of the parameter."""
    response = api.get(f"/api/v1/{resource}/?{name}={value}")

    assert response.status_code == 400
    assert response.json() == error(reason, name)


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("2026-01-02T08:00:00%2B16:00", 0),  # 2026-01-01T16:00Z
        ("2026-01-02T16:30:00%2B16:00", 1),  # 2026-01-02T00:30Z
        ("2026-01-01T04:00:00-18:59", 0),  # 2026-01-01T22:59Z
        ("2026-01-01T06:00:00-18:59", 1),  # 2026-01-02T00:59Z
    ],
)
def test_offsets_postgresql_cannot_read_are_compared_in_utc(api, value, found):
    SubscriptionFactory(renews_at=datetime(2026, 1, 2, tzinfo=UTC))

    response = api.get(f"/api/v1/subscriptions/?renews_before={value}")

    assert response.status_code == 200
    assert len(response.json()["results"]) == found


@pytest.mark.parametrize("resource", LISTS)
@pytest.mark.parametrize("value", ["abc", "0", "-1", "1001", "1.5", "%C2%B2", "99999999999999"])
def test_a_page_size_out_of_range_is_400(api, resource, value):
    response = api.get(f"/api/v1/{resource}/?page_size={value}")

    assert response.status_code == 400
    assert response.json() == error("must be a whole number from 1 to 1000", "page_size")


def test_the_schema_documents_the_new_errors(api):
    schema = json.loads(api.get("/api/schema/?format=json").content)

    learners = schema["paths"]["/api/v1/learners/"]["get"]
    assert {"400", "404"} <= set(learners["responses"])
    page_size = next(p for p in learners["parameters"] if p["name"] == "page_size")
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    bulk = schema["paths"]["/api/v1/learners/bulk/"]["post"]
    assert {"400", "411", "413", "415"} <= set(bulk["responses"])
    detail = schema["paths"]["/api/v1/learners/{external_id}/"]["get"]
    assert detail["parameters"][0]["schema"]["pattern"] == "^[^/\\x00-\\x1f\\x7f]+$"


@pytest.mark.parametrize("resource", LISTS)
@pytest.mark.parametrize("name", ["limit", "per_page", "offset"])
def test_another_api_s_paging_parameter_is_refused_naming_page_size(api, resource, name):
    """``?limit=10`` must not be ignored (the caller would get 100 rows and no error)."""
    response = api.get(f"/api/v1/{resource}/?{name}=10")

    assert response.status_code == 400
    (item,) = response.json()["errors"]
    assert item["field"] == name
    assert item["reason"].startswith("is not a query parameter of this list; use ")
    assert "cursor" in item["reason"]
    assert "page_size" in item["reason"]


def test_the_recommendations_limit_is_in_the_schema(api):
    schema = json.loads(api.get("/api/schema/?format=json").content)
    for path in [
        "/api/v1/products/{sku}/recommendations/",
        "/api/v1/learners/{external_id}/recommendations/",
    ]:
        limit = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}


def test_bulk_endpoints_describe_their_400_bodies_and_leak_no_docstring(api):
    schema = json.loads(api.get("/api/schema/?format=json").content)
    assert "Subclasses set" not in json.dumps(schema)
    bulk_refused = {
        "anyOf": [
            {"$ref": "#/components/schemas/SyncResult"},
            {"$ref": "#/components/schemas/Error"},
        ]
    }
    for resource in ["learners", "courses", "enrollments", "products", "orders", "subscriptions"]:
        post = schema["paths"][f"/api/v1/{resource}/bulk/"]["post"]
        assert post["description"].startswith('A JSON object `{"items": [...]}`'), resource
        body = post["responses"]["400"]["content"]["application/json"]["schema"]
        assert body == bulk_refused, resource
    events = schema["paths"]["/api/v1/events/bulk/"]["post"]["responses"]["400"]
    assert events["content"]["application/json"]["schema"] == {
        "anyOf": [
            {"$ref": "#/components/schemas/IngestResult"},
            {"$ref": "#/components/schemas/Error"},
        ]
    }


def test_errors_are_one_shared_component_bodies_are_required_and_a_server_is_named(api):
    schema = json.loads(api.get("/api/schema/?format=json").content)
    assert schema["servers"] == [
        {"url": "http://127.0.0.1:8000", "description": "This deployment (SITE_URL)"}
    ]
    operations = [op for ops in schema["paths"].values() for op in ops.values()]
    for operation in operations:
        if "requestBody" in operation:
            assert operation["requestBody"]["required"] is True, operation["operationId"]
        for status in ("401", "429"):
            body = operation["responses"][status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}, operation["operationId"]


def test_fields_that_can_be_null_or_empty_say_so(api):
    """What strict (pydantic) generated clients refused: a null where the schema promised a
    string, an empty email where it promised ``format: email``."""
    schemas = json.loads(api.get("/api/schema/?format=json").content)["components"]["schemas"]
    for component, field in [
        ("SubscriptionOut", "learner"),
        ("SubscriptionOut", "account"),
        ("EventOut", "course"),
        ("EventOut", "module"),
        ("ProductOut", "course"),
    ]:
        assert schemas[component]["properties"][field]["nullable"] is True, (component, field)
    assert "format" not in schemas["LearnerOut"]["properties"]["email"]


def test_nested_request_fields_are_typed_from_the_specs_that_validate_them(api):
    """Course modules, order lines, a learner's unsubscribed_at and a course's url were
    ``{}`` (any value) in the schema: generated clients typed them as untyped dicts."""
    paths = json.loads(api.get("/api/schema/?format=json").content)["paths"]

    def item(path: str) -> dict:
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return body["properties"]["items"]["items"]["properties"]

    modules = item("/api/v1/courses/bulk/")["modules"]
    assert modules["type"] == "array"
    assert modules["items"]["required"] == ["external_id", "position"]
    assert set(modules["items"]["properties"]) == {"external_id", "title", "position", "is_final"}
    lines = item("/api/v1/orders/bulk/")["lines"]
    assert (lines["type"], lines["minItems"]) == ("array", 1)
    assert lines["items"]["required"] == ["external_id", "sku", "unit_price"]
    assert item("/api/v1/learners/bulk/")["unsubscribed_at"] == {
        "type": "string",
        "format": "date-time",
        "nullable": True,
    }
    assert item("/api/v1/courses/bulk/")["url"]["maxLength"] == 500
