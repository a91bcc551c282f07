"""The fast path of event validation accepts exactly what the full path accepts, with the
same row, and leaves every refused item to the full path, so the errors stay as they were."""

from datetime import UTC, datetime, timedelta

import pytest

from expansion.core.api.fields import FieldError
from learners.event_items import EventRow, _item_problems, _valid_row, event_validate

DEEP: list = [1]
for _ in range(40):
    DEEP = [DEEP]
NOW_LIMIT = datetime(2026, 6, 2, tzinfo=UTC)
BASE = {
    "idempotency_key": "k-1",
    "learner": "alice",
    "kind": "login",
    "occurred_at": "2026-03-01T10:00:00+02:00",
}


def item(**changes):
    out = dict(BASE)
    for name, value in changes.items():
        if value is KeyError:
            out.pop(name)
        else:
            out[name] = value
    return out


VALID = [
    item(),
    item(kind="custom.webinar_attended", value=3),
    item(kind="assessment_submitted", value=100, course="sql-1", module="m8"),
    item(kind="usage_reported", properties={"metric": "api", "used": 0, "limit": 5.5}),
    item(kind="community_post", properties={"text": "héllo ✓"}),
    item(value=None, course=None, module=None, properties=None),
    item(occurred_at="2026-06-02T23:30:00+23:30"),  # exactly the limit, in UTC
    item(learner="a" * 255, idempotency_key="k" * 200),
    item(learner="ålice", course="cours-é", module="módulo", idempotency_key="clé"),
    item(occurred_at="2026-03-01T08:00:00Z"),
    item(occurred_at="2026-03-01T08:00:00.123456+00:00"),
    item(occurred_at="1990-01-01T00:00:00Z"),
]
REFUSED = [
    ["not", "an", "object"],
    item(extra=1),
    item(learner=KeyError),
    item(idempotency_key=""),
    item(idempotency_key="k" * 201),
    item(idempotency_key="k\n"),
    item(idempotency_key=7),
    item(learner="alice "),
    item(learner="a/b"),
    item(learner="bulk"),
    item(learner=".."),
    item(learner="a" * 256),
    item(learner="nul\x00"),
    item(learner="al\ud800ice"),
    item(course="c\udfff", module="m"),
    item(idempotency_key="k\x00"),
    item(occurred_at="2026-03-01T08:00:00+00:00:30"),
    item(occurred_at="2200-01-01T00:00:00Z"),
    item(occurred_at="2026-03-01T08:00:00\ud800"),
    item(kind="Login"),
    item(kind="custom."),
    item(kind=None),
    item(occurred_at="2026-03-01T10:00:00"),
    item(occurred_at="2026-03-01T10:00:00+02:00:30"),
    item(occurred_at="1989-12-31T23:59:00Z"),
    item(occurred_at="2026-06-02T00:00:01Z"),
    item(occurred_at=1700000000),
    item(value=True),
    item(value="3"),
    item(value=float("nan")),
    item(value=1e13),
    item(kind="assessment_submitted"),
    item(kind="assessment_submitted", value=100.5),
    item(module="m8"),
    item(course="sql 1 "),
    item(course="sql-1", module=""),
    item(properties=[1]),
    item(properties={"big": "x" * 20_000}),
    item(properties={"bad": "\ud800"}),
    item(properties={"deep": DEEP}),
    item(kind="usage_reported", properties={"metric": "api", "used": True, "limit": 5}),
    item(kind="usage_reported", properties={"metric": "api", "used": 1, "limit": 0}),
    item(kind="community_question", properties={"text": 3}),
]


@pytest.mark.parametrize("payload", VALID)
def test_a_valid_item_takes_the_fast_path_to_the_same_row(payload):
    fast = _valid_row(4, payload, NOW_LIMIT)
    slow_errors: list = []
    assert isinstance(fast, EventRow)
    assert fast == _item_problems(4, payload, slow_errors, NOW_LIMIT)
    assert slow_errors == []
    errors: list = []
    assert event_validate(4, payload, errors, NOW_LIMIT) == fast
    assert errors == []


@pytest.mark.parametrize("payload", REFUSED)
def test_a_refused_item_gets_the_full_paths_errors(payload):
    try:
        fast = _valid_row(4, payload, NOW_LIMIT)
    except FieldError:  # the only exception the fast path may raise
        fast = None
    assert fast is None
    expected: list = []
    assert _item_problems(4, payload, expected, NOW_LIMIT) is None
    assert expected
    assert {error["index"] for error in expected} == {4}
    errors: list = []
    assert event_validate(4, payload, errors, NOW_LIMIT) is None
    assert errors == expected


def test_the_time_limit_is_inclusive_on_both_paths():
    limit = datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert _valid_row(0, item(), limit).occurred_at == limit
    assert _valid_row(0, item(), limit - timedelta(microseconds=1)) is None
