"""A generated corpus of hostile bulk batches (issue 18): valid items mixed with bad ones (wrong
types, NUL, lone surrogates, numbers past 64 bits, JSON nested past what orjson encodes, odd
Unicode, bad dates and offsets, ids no detail route reaches, missing, unknown and repeated
fields) posted to every bulk endpoint.

Every batch: no server error; 400 exactly when an item is bad, each bad item named by its index
(and the field broken), no good item named; the good items stored exactly once and the bad ones
never (exact row counts before and after). Each example runs in a savepoint rolled back at its
end, so each starts from the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expansion.commerce.models import Order, OrderLine, Product, ProductKind, Subscription
from learners import ingest
from learners.models import Course, Enrollment, Event, Learner, Module
from tests.factories.expansion import ProductFactory
from tests.factories.learners import CourseFactory, LearnerFactory, ModuleFactory

pytestmark = pytest.mark.django_db

REFS = 64  # learners ref-0 … ref-63: enrolments need one (learner, course) pair per item
EXAMPLES = 40  # random batches per endpoint: 280 in all, besides the sweep of every bad value

# --- valid, if odd, values -------------------------------------------------------------------

# Any Unicode a database can store in single-line text: no control characters, surrogates or
# line separators; everything else (combining marks, RTL, emoji, zero-width, CJK) is fine.
PRINTABLE = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))
odd_text = st.text(PRINTABLE, max_size=30)
id_part = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="/"
    ),
    max_size=12,
)
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8),
        inner,
        max_size=3,
    ),
    max_leaves=8,
)
json_object = st.dictionaries(st.text(PRINTABLE, max_size=8), json_value, max_size=4)


@st.composite
def past_time(draw) -> str:
    """Between 1990 and a month ago, in any whole-minute offset Python reads (±23:59)."""
    # Naive bounds, as hypothesis wants them; the offset is added below.
    earliest, latest = datetime(1990, 1, 2), datetime(2026, 10, 1)  # noqa: DTZ001
    moment = draw(st.datetimes(min_value=earliest, max_value=latest))
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


# --- hostile values --------------------------------------------------------------------------


def deep(depth: int, leaf: bytes = b"1") -> orjson.Fragment:
    return orjson.Fragment(b'{"k":' * depth + leaf + b"}" * depth)


HUGE = orjson.Fragment(b"18446744073709551616")  # 2**64: past 64 bits, parsed as a float
NEG_HUGE = orjson.Fragment(b"-18446744073709551616")
SURROGATE = orjson.Fragment(b'"a\\ud800b"')
# Bad in any field: checked before the field's own validator. (A lone surrogate escape makes
# orjson refuse the whole body: tested on its own below, or it would mask the rest.)
ANYWHERE = [
    "a\x00b",
    deep(33),
    deep(300),
    orjson.Fragment(b"[" * 1000 + b"]" * 1000),
    deep(70, b'"\\u0000"'),
    {"x": ["a\x00"]},
]
WRONG_FOR_STRING = [1, 1.5, True, [], {}, [1], {"a": 1}, HUGE]
BAD_ID = WRONG_FOR_STRING + ["", "a/b", " a", "a ", "a\tb", "..", ".", "a\u2028b", "x" * 256]
BAD_TIME = [
    1,
    True,
    [],
    {},
    "",
    "yesterday",
    "2026-01-01T10:00:00",
    "2026-13-01T00:00:00Z",
    "2026-01-01T10:00:00+05:30:15",
    "0001-01-01T00:00:00+16:00",
    "9999-12-31T23:59:59-16:00",
    "1980-01-01T00:00:00Z",
    "9999-01-01T00:00:00Z",
]
BAD_PAST = BAD_TIME + ["2150-01-01T00:00:00Z"]
BAD_MONEY = [
    -1,
    "-0.01",
    "abc",
    1.001,
    "1e20",
    True,
    [],
    {},
    "NaN",
    "Infinity",
    HUGE,
    "1e2",
    " 49",
    "+49",
    "49.000",
    None,  # last: allowed where the amount is optional
]
BAD_BOOL = [0, 1, "true", None, [], HUGE]
BAD_JSON = [[], "x", 1, None, True, deep(33), {"blob": "x" * 17_000}]
BAD_CHOICE = ["bogus", 1, None, "", []]


def bad_text(*, max_length: int = 255, blank: bool = False) -> list[Any]:
    values = WRONG_FOR_STRING + [None, "a\nb", "a\rb", "\x1b[31m", "a\x7fb", "x" * (max_length + 1)]
    return values if blank else values + ["", "   "]


def bad_int(*, minimum: int, maximum: int) -> list[Any]:
    return [1.5, minimum - 1, maximum + 1, True, "1", HUGE, NEG_HUGE, []]


@dataclass(frozen=True)
class Mutation:
    field: str
    values: list[Any]


# --- the endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    unique: str  # the field an in-batch repeat is reported on
    mutations: tuple[Mutation, ...]
    required: tuple[str, ...]
    models: tuple[type, ...]  # counted before and after

    def good(self, draw, n: int) -> dict[str, Any]:
        return GOOD[self.name](draw, n)


def _id(draw, n: int, prefix: str = "i") -> str:
    return f"{prefix}{n}-{draw(id_part)}-z"


def good_learner(draw, n):
    item = {"external_id": _id(draw, n), "name": draw(odd_text)}
    if draw(st.booleans()):
        item |= {
            "email": draw(
                st.sampled_from([f"U{n}@Example.org", f"ü{n}@例え.jp", "İ" * 5 + f"{n}@x.io"])
            ),
            "attributes": draw(json_object),
            "time_zone": draw(st.sampled_from(["UTC", "Asia/Kolkata", "America/St_Johns"])),
            "signed_up_at": draw(past_time()),
            "role": draw(st.sampled_from(["admin", "member", "billing_owner"])),
            "marketing_opt_in": draw(st.booleans()),
            "locale": draw(st.sampled_from(["en", "de-AT", "pt-BR"])),
        }
    return item


def good_course(draw, n):
    modules = draw(st.integers(min_value=0, max_value=3))
    return {
        "external_id": _id(draw, n),
        "title": "T " + draw(odd_text),
        "url": draw(st.sampled_from(["", "https://example.org/c?ü=1", "HTTP://x.io/a%2Fb"])),
        "learning_path": draw(odd_text),
        "modules": [
            {"external_id": f"m{k}-{draw(id_part)}-z", "title": draw(odd_text), "position": k + 1}
            for k in range(modules)
        ],
    }


def good_enrollment(draw, n):
    item = {"learner": f"ref-{n}", "course": "ref-c", "enrolled_at": draw(past_time())}
    if draw(st.booleans()):
        item["progress"] = draw(st.floats(min_value=0, max_value=100))
    return item


def good_event(draw, n):
    item = {
        "idempotency_key": f"k{n}-{draw(id_part)}",
        "learner": f"ref-{n}",
        "kind": draw(st.sampled_from(["login", "resource_downloaded", "custom.webinar_2026"])),
        "occurred_at": draw(past_time()),
    }
    if draw(st.booleans()):
        item |= {
            "properties": draw(json_object),
            "value": draw(st.none() | st.floats(min_value=-1e12, max_value=1e12)),
            "course": "ref-c",
            "module": draw(st.sampled_from([None, "m1"])),
        }
    return item


def good_product(draw, n):
    return {
        "sku": _id(draw, n, "s"),
        "name": "P " + draw(odd_text),
        "kind": draw(st.sampled_from(ProductKind.values)),
        "price": draw(st.sampled_from(["0.00", "49.90", 12, 9999999999.99, 1e2, "0049.05"])),
        "course": draw(st.sampled_from([None, "ref-c"])),
    }


def good_order(draw, n):
    lines = draw(st.integers(min_value=1, max_value=3))
    return {
        "external_id": _id(draw, n),
        "learner": f"ref-{n}",
        "placed_at": draw(past_time()),
        "lines": [
            {
                "external_id": f"l{k}",
                "sku": "ref-p",
                "quantity": k + 1,
                "unit_price": "10.00",
                "refunded_amount": "5.00",
            }
            for k in range(lines)
        ],
    }


def good_subscription(draw, n):
    return {
        "external_id": _id(draw, n),
        "learner": f"ref-{n}",
        "plan": "ref-p",
        "mrr": draw(st.sampled_from(["0.00", "29.00", 99])),
        "status": draw(st.sampled_from(["active", "trialing", "past_due"])),
        "started_at": draw(past_time()),
        "seats_used": draw(st.none() | st.integers(min_value=0, max_value=10_000_000)),
        "quota_limit": draw(st.none() | st.integers(min_value=0, max_value=2**53)),
    }


GOOD = {
    "learners": good_learner,
    "courses": good_course,
    "enrollments": good_enrollment,
    "events": good_event,
    "products": good_product,
    "orders": good_order,
    "subscriptions": good_subscription,
}

M = Mutation
ENDPOINTS = [
    Endpoint(
        "learners",
        "external_id",
        (
            M("external_id", BAD_ID),
            M(
                "email",
                [
                    "nope",
                    "a b@example.org",
                    "İ" * 242 + "@example.org",
                    5,
                    None,
                    "x" * 250 + "@example.org",
                    "a@b\n.c",
                ],
            ),
            M("name", bad_text(blank=True)),
            M("account", BAD_ID[1:]),
            M("time_zone", ["Mars/Base", 5, "", None]),
            M("locale", bad_text(max_length=16)),
            M("marketing_opt_in", BAD_BOOL),
            M("unsubscribed_at", BAD_PAST),
            M("attributes", BAD_JSON),
            M("role", BAD_CHOICE),
            M("signed_up_at", BAD_PAST),
        ),
        ("external_id",),
        (Learner,),
    ),
    Endpoint(
        "courses",
        "external_id",
        (
            M("external_id", BAD_ID),
            M("title", bad_text()),
            M("creator", ["nobody", 5, "a\nb"]),
            M("learning_path", bad_text(blank=True)),
            M("url", ["ftp://x", "javascript:alert(1)", 5, "http://a\nb", "http://" + "x" * 500]),
            M(
                "modules",
                [
                    "x",
                    {},
                    [1],
                    [{"external_id": "a/b", "position": 1}],
                    [{"external_id": "m", "position": 0}],
                    [{"external_id": "m", "position": 1}, {"external_id": "n", "position": 1}],
                    [{"external_id": "m", "position": 1, "title": "a\nb"}],
                ],
            ),
        ),
        ("external_id", "title"),
        (Course, Module),
    ),
    Endpoint(
        "enrollments",
        "learner+course",
        (
            M("learner", BAD_ID + ["unknown"]),
            M("course", BAD_ID + ["unknown"]),
            M("enrolled_at", BAD_PAST),
            M("completed_at", BAD_PAST + ["1990-01-01T00:00:00Z"]),  # before enrolled_at
            M("progress", [-1, 101, "50", True, HUGE, []]),
        ),
        ("learner", "course", "enrolled_at"),
        (Enrollment,),
    ),
    Endpoint(
        "events",
        "idempotency_key",
        (
            M("idempotency_key", WRONG_FOR_STRING + [None, "", "x" * 201, "a\nb"]),
            M("learner", BAD_ID + ["unknown", None]),
            M("kind", ["bogus", "custom.", "custom.X", "custom.x\n", 1, None]),
            M("occurred_at", BAD_PAST + [None]),
            M("value", ["high", True, orjson.Fragment(b"1e13"), HUGE, [], {}]),
            M("course", BAD_ID + ["unknown"]),
            M("properties", BAD_JSON[:3] + BAD_JSON[4:]),
        ),
        ("idempotency_key", "learner", "kind", "occurred_at"),
        (Event,),
    ),
    Endpoint(
        "products",
        "sku",
        (
            M("sku", BAD_ID + ["x" * 101]),
            M("name", bad_text()),
            M("kind", BAD_CHOICE),
            M("price", BAD_MONEY),
            M("currency", ["EUR", 5, "", "US", None]),
            M("unit_cost", BAD_MONEY[:-1]),
            M("course", BAD_ID[1:] + ["unknown"]),
            M("is_active", BAD_BOOL),
        ),
        ("sku", "name", "kind", "price"),
        (Product,),
    ),
    Endpoint(
        "orders",
        "external_id",
        (
            M("external_id", BAD_ID),
            M("learner", BAD_ID + ["unknown"]),
            M("placed_at", BAD_PAST),
            M("currency", ["EUR", 5]),
            M(
                "lines",
                [
                    None,
                    [],
                    "x",
                    [1],
                    [{"external_id": "l", "sku": "nope", "unit_price": "1.00"}],
                    [{"external_id": "l", "sku": "ref-p", "unit_price": "1.00", "quantity": 0}],
                    [
                        {
                            "external_id": "l",
                            "sku": "ref-p",
                            "unit_price": "1.00",
                            "refunded_amount": "2.00",
                        }
                    ],
                    [{"external_id": "l/1", "sku": "ref-p", "unit_price": "1.00"}],
                    [{"external_id": "l", "sku": "ref-p", "unit_price": HUGE}],
                ],
            ),
        ),
        ("external_id", "learner", "placed_at", "lines"),
        (Order, OrderLine),
    ),
    Endpoint(
        "subscriptions",
        "external_id",
        (
            M("external_id", BAD_ID),
            M("learner", BAD_ID + ["unknown"]),
            M("plan", BAD_ID + ["unknown"]),
            M("mrr", BAD_MONEY),
            M("status", BAD_CHOICE),
            M("started_at", BAD_PAST),
            M("renews_at", BAD_TIME[:-1] + ["2300-01-01T00:00:00Z"]),
            M("seats_used", bad_int(minimum=0, maximum=10_000_000)),
            M("quota_used", bad_int(minimum=0, maximum=2**53)),
            M("changed_at", BAD_PAST),
        ),
        ("external_id", "plan", "mrr", "status", "started_at"),
        (Subscription,),
    ),
]


# --- one batch -------------------------------------------------------------------------------


@dataclass
class Planned:
    item: Any
    bad_field: str | None = None  # the field the error must name (None: the whole item)
    bad: bool = False
    duplicate_of: int | None = None  # an event repeated verbatim: a duplicate, not an error
    rows: int = 0  # rows of the second model (modules, lines) this good item adds


@st.composite
def batch(draw, endpoint: Endpoint) -> list[Planned]:
    size = draw(st.integers(min_value=1, max_value=16))
    planned: list[Planned] = []
    for n in range(size):
        item = endpoint.good(draw, n)
        roll = draw(st.integers(min_value=0, max_value=11))
        goods = [p for p in planned if not p.bad and p.duplicate_of is None]
        if roll < 3:  # a good item
            planned.append(_good(item))
        elif roll < 8:  # one field made bad
            mutation = draw(st.sampled_from(endpoint.mutations))
            value = draw(st.sampled_from(mutation.values + ANYWHERE))
            if value == "unknown":  # well-formed but absent: unique, or it repeats the last
                value = f"unknown-{n}"
            planned.append(Planned({**item, mutation.field: value}, mutation.field, bad=True))
        elif roll == 8:  # a required field left out, or an unknown one added
            if draw(st.booleans()):
                name = draw(st.sampled_from(endpoint.required))
                item.pop(name)
                planned.append(Planned(item, name, bad=True))
            else:
                planned.append(Planned({**item, "surprise": draw(json_scalar)}, "surprise", True))
        elif roll == 9:  # not an object at all
            planned.append(Planned(draw(st.sampled_from([1, "x", [], None, [item]])), None, True))
        elif goods:  # an earlier good item again
            earlier = draw(st.sampled_from(goods))
            index = planned.index(earlier)
            if endpoint.name != "events":
                planned.append(Planned(dict(earlier.item), endpoint.unique, bad=True))
            elif draw(st.booleans()):
                planned.append(Planned(dict(earlier.item), duplicate_of=index))
            else:  # the key reused with other content: a conflict
                other = {**earlier.item, "kind": "custom.other"}
                planned.append(Planned(other, "idempotency_key", bad=True))
        else:
            planned.append(_good(item))
    return planned


def _good(item: dict[str, Any]) -> Planned:
    return Planned(item, rows=len(item.get("modules", item.get("lines", []))))


@st.composite
def sweep(draw, endpoint: Endpoint, mutation: Mutation | None) -> list[Planned]:
    """Every bad value of one field (``None``: every required field left out, an unknown
    field), each after a good item."""
    if mutation is None:
        bad = [(name, None) for name in endpoint.required] + [("surprise", 1)]
    else:
        bad = [(mutation.field, value) for value in mutation.values + ANYWHERE]
    planned: list[Planned] = []
    for k, (name, value) in enumerate(bad):
        planned.append(_good(endpoint.good(draw, 2 * k)))
        item = endpoint.good(draw, 2 * k + 1)
        if mutation is None and name != "surprise":
            item.pop(name)
        else:
            item[name] = f"unknown-{k}" if value == "unknown" else value
        planned.append(Planned(item, name, bad=True))
    return planned


class Rollback(Exception):
    pass


@pytest.fixture
def references(db):
    refs = Learner.objects.bulk_create(
        [LearnerFactory.build(external_id=f"ref-{n}") for n in range(REFS)]
    )
    course = CourseFactory(external_id="ref-c")
    ModuleFactory(course=course, external_id="m1", position=1)
    ProductFactory(sku="ref-p", kind=ProductKind.PLAN)
    return refs


def counts(endpoint: Endpoint) -> tuple[int, ...]:
    return tuple(model.objects.count() for model in endpoint.models)


SETTINGS = {
    "deadline": None,
    "derandomize": True,  # the same corpus on every run and machine
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_hostile_batches_store_exactly_the_good_items(api, references, endpoint, data):
    _check_in_savepoint(api, endpoint, data.draw(batch(endpoint)))


SWEEPS = [(e, m) for e in ENDPOINTS for m in (*e.mutations, None)]


@pytest.mark.parametrize(
    ("endpoint", "mutation"),
    SWEEPS,
    ids=[f"{e.name}-{m.field if m else 'structure'}" for e, m in SWEEPS],
)
@settings(max_examples=1, **SETTINGS)
@given(data=st.data())
def test_every_bad_value_of_every_field_is_named_and_the_rest_stored(
    api, references, endpoint, mutation, data
):
    _check_in_savepoint(api, endpoint, data.draw(sweep(endpoint, mutation)))


def _check_in_savepoint(api, endpoint: Endpoint, planned: list[Planned]) -> None:
    ingest._LEARNER_IDS.clear()  # the savepoint below rolls back ids it would cache
    try:
        with transaction.atomic():
            _post_and_check(api, endpoint, planned)
            raise Rollback
    except Rollback:
        pass


def _post_and_check(api, endpoint: Endpoint, planned: list[Planned]) -> None:
    before = counts(endpoint)
    body = orjson.dumps({"items": [p.item for p in planned]})
    response = api.post(f"/api/v1/{endpoint.name}/bulk/", body, content_type="application/json")

    bad = {i: p for i, p in enumerate(planned) if p.bad}
    good = [p for p in planned if not p.bad and p.duplicate_of is None]
    assert response.status_code == (400 if bad else 200), response.content[:500]
    result = response.json()
    named: dict[int, list[str | None]] = {}
    for error in result["errors"]:
        named.setdefault(error["index"], []).append(error["field"])
    assert set(named) == set(bad), (named, body[:1500])
    for index, plan in bad.items():
        fields = named[index]
        if plan.bad_field is None:
            assert fields == [None], (index, fields)
        else:
            assert any(
                f == plan.bad_field or (f or "").startswith(f"{plan.bad_field}[") for f in fields
            ), (index, plan.bad_field, fields, result["errors"])
    after = counts(endpoint)
    if endpoint.name == "events":
        assert result["accepted"] == len(good)
        duplicates = [i for i, p in enumerate(planned) if p.duplicate_of is not None]
        assert [d["index"] for d in result["duplicates"]] == duplicates
    else:
        assert (result["created"], result["updated"]) == (len(good), 0)
    assert after[0] - before[0] == len(good)
    if len(after) > 1:  # a course's modules, an order's lines
        assert after[1] - before[1] == sum(p.rows for p in good)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
@settings(max_examples=1, **SETTINGS)
@given(data=st.data())
def test_a_lone_surrogate_refuses_the_whole_body_and_writes_nothing(
    api, references, endpoint, data
):
    """orjson refuses ``\\ud800`` (not encodable as UTF-8) while parsing: a 400 for the body."""
    good = endpoint.good(data.draw, 0)
    bad = {**endpoint.good(data.draw, 1), endpoint.required[0]: SURROGATE}
    before = counts(endpoint)

    body = orjson.dumps({"items": [good, bad]})
    response = api.post(f"/api/v1/{endpoint.name}/bulk/", body, content_type="application/json")

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (None, None)
    assert error["reason"].startswith("Malformed JSON")
    assert counts(endpoint) == before
