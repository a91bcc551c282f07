"""A generated corpus of hostile query strings against every list endpoint and every filter
(issue 18): random and real parameter names, bad values, NULs, huge numbers, odd Unicode,
invalid UTF-8, tampered cursors, bad dates and offsets past ±15:59. No response is a server
error, every 4xx is the one error shape, and no request changes a row."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.models import Send
from expansion.commerce.models import Order, OrderLine, Product, Subscription
from learners.models import Account, Course, Enrollment, Event, Learner
from tests.factories.expansion import OrderLineFactory, SubscriptionFactory
from tests.factories.learners import (
    AccountFactory,
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
)
from tests.security.test_api_input import FILTERS  # each list's filters, stated once

pytestmark = pytest.mark.django_db

PAGING = ["cursor", "page_size"]
MODELS = [
    Account,
    Learner,
    Course,
    Enrollment,
    Event,
    Product,
    Order,
    OrderLine,
    Subscription,
    Send,
]


def _rows() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def _encode(value: str) -> str:
    return quote(value, safe="")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
dates = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
    st.datetimes(
        min_value=datetime(1, 1, 1),  # noqa: DTZ001 (naive bounds; the zone is drawn apart)
        max_value=datetime(9999, 12, 31, 23, 59),  # noqa: DTZ001
    ),
    offsets,
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e309", "-0", "0x10", "1_000", "²", "٣", "３", "1.5", "", " 1"]),
)
cursors = st.one_of(
    st.text(max_size=20).map(_b64),
    st.builds(lambda key, v: _b64(f"{key}={v}"), st.sampled_from("opr"), st.text(max_size=12)),
    st.builds(lambda v: _b64(f"o=0&r=0&p={v}"), numbers),
    st.text(max_size=20),
)
odd = st.sampled_from(
    ["\x00", "a\x00b", "\u202e", "\ufeff", "\U0001f600", "é", "\u0301", "'; DROP TABLE x;--"]
)
values = st.one_of(
    st.text(max_size=40),
    odd,
    numbers,
    dates,
    cursors,
    st.sampled_from(["true", "false", "maybe", "TRUE", "yes", "null", "None", "[]", "{}"]),
    st.text(min_size=300, max_size=2000),
)
# Percent-escapes that are not UTF-8: Django decodes them with replacement.
raw_values = st.sampled_from(["%FF", "%C0%80", "%ED%A0%80", "%00", "%", "%zz", "a%2", "+"])


@st.composite
def list_queries(draw) -> tuple[str, str]:
    resource = draw(st.sampled_from(sorted(FILTERS)))
    names = st.one_of(
        st.sampled_from(FILTERS[resource] + PAGING),
        st.sampled_from(sorted({f for fs in FILTERS.values() for f in fs})),
        st.text(min_size=0, max_size=20).filter(lambda name: name != "format"),
    )
    pairs = draw(
        st.lists(
            st.tuples(names, st.one_of(values.map(_encode), raw_values)), min_size=1, max_size=4
        )
    )
    query = "&".join(f"{_encode(name)}={value}" for name, value in pairs)
    return resource, query


def _assert_error_shape(response, request: str) -> None:
    assert response["Content-Type"].startswith("application/json"), request
    body = response.json()
    assert set(body) == {"errors"}, request
    assert isinstance(body["errors"], list), request
    assert body["errors"], request
    for error in body["errors"]:
        assert set(error) == {"index", "field", "reason"}, request
        assert error["index"] is None or isinstance(error["index"], int), request
        assert error["field"] is None or isinstance(error["field"], str), request
        assert isinstance(error["reason"], str), request
        assert error["reason"], request


@pytest.fixture
def data(db):
    account = AccountFactory(external_id="acme")
    ann = LearnerFactory(external_id="ann", account=account)
    course = CourseFactory(external_id="sql-1")
    EnrollmentFactory(learner=ann, course=course)
    EventFactory(learner=ann, course=course, occurred_at=datetime(2026, 1, 2, tzinfo=UTC))
    OrderLineFactory(order__learner=ann)
    SubscriptionFactory(learner=ann, renews_at=datetime(2026, 2, 1, tzinfo=UTC))
    return _rows()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=list_queries())
def test_no_query_string_crashes_a_list_or_changes_a_row(api, data, case):
    resource, query = case
    request = f"/api/v1/{resource}/?{query}"

    response = api.get(request)

    assert response.status_code < 500, request
    if response.status_code >= 400:
        assert response.status_code in (400, 404), request
        _assert_error_shape(response, request)
    else:
        assert response.status_code == 200, request
        assert set(response.json()) == {
            "next",
            "previous",
            "next_cursor",
            "previous_cursor",
            "results",
        }, request
    assert _rows() == data, request


DETAILS = [
    "learners/{}/",
    "learners/{}/scores/",
    "learners/{}/recommendations/",
    "courses/{}/",
    "products/{}/",
    "products/{}/recommendations/",
    "orders/{}/",
    "subscriptions/{}/",
]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(DETAILS),
    segment=st.one_of(values.map(_encode), raw_values).filter(bool),
    query=st.one_of(st.just(""), st.builds(lambda v: f"?limit={v}", values.map(_encode))),
)
def test_no_path_id_crashes_a_detail_route_or_changes_a_row(api, data, path, segment, query):
    request = "/api/v1/" + path.format(segment) + query

    response = api.get(request)

    assert response.status_code in (200, 400, 404), request
    if response.status_code != 200:
        _assert_error_shape(response, request)
    assert _rows() == data, request
