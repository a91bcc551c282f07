"""Segment rules: compile errors, each condition, membership entries and exits, and agreement
with a plain-Python reference on random data."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learners.models import DirtyLearner, Learner, Segment, SegmentMembership, SegmentSnapshot
from learners.scoring import score_learners
from learners.segments import (
    SegmentError,
    compile_definition,
    segment_members,
    segment_preview,
    segment_refresh,
    segments_refresh,
)
from tests.factories.expansion import OrderLineFactory, ProductFactory
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    LearnerScoreFactory,
    ModuleFactory,
    SegmentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
AS_OF = datetime(2026, 3, 1, 12, tzinfo=UTC)


def members(definition, bulk: bool = True) -> set[str]:
    found = segment_members(definition, as_of=AS_OF, bulk=bulk)
    return set(found.values_list("external_id", flat=True))


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ([], "must be an object"),
        ({"all": []}, "all: must be a non-empty list"),
        ({"all": [{"field": "shoe_size"}]}, "all[0].field: unknown field 'shoe_size'"),
        ({"any": [{"field": "lps", "op": "~", "value": 3}]}, "any[0]: unknown op '~'"),
        # The operator is named, not the value, on choice fields too.
        ({"field": "band", "op": "~", "value": "x"}, "unknown op '~' for band; use in"),
        (
            {"all": [{"field": "stage", "op": "gte", "value": ["growth"]}]},
            "all[0]: unknown op 'gte'",
        ),
        ({"field": "band", "op": "in", "value": ["gold"]}, "unknown gold; use high, low, mid"),
        ({"field": "lps", "value": "high"}, "value must be a number"),
        ({"field": "flag", "value": "grumpy"}, "unknown flag 'grumpy'"),
        ({"field": "event_count", "kind": "login", "days": 0, "value": 1}, "days must be"),
        ({"not": {"field": "attribute", "key": "a b", "value": 1}}, "not: key may hold"),
        ({"all": [{"field": "lps", "value": 1}], "any": []}, "a group holds only 'all'"),
    ],
)
def test_bad_definitions_name_the_path(definition, message):
    with pytest.raises(SegmentError) as error:
        compile_definition(definition)
    assert message in error.value.messages[0]


def test_preview_returns_errors_instead_of_raising():
    assert segment_preview({"field": "nope"}) == {
        "ok": False,
        "error": "field: unknown field 'nope'; use "
        + ", ".join(
            sorted(
                [
                    "assessment",
                    "attribute",
                    "band",
                    "community",
                    "completed",
                    "completion",
                    "downloads",
                    "enrolled_in",
                    "event_count",
                    "flag",
                    "last_event_age",
                    "login",
                    "lps",
                    "owns_product",
                    "reachable",
                    "rfm_cell",
                    "rfm_frequency",
                    "rfm_monetary",
                    "rfm_recency",
                    "rfm_segment",
                    "stage",
                ]
            )
        ),
    }


def test_conditions_on_scores_attributes_courses_products_and_events():
    high = LearnerScoreFactory(
        learner=LearnerFactory(external_id="high", attributes={"plan": "pro", "seats": 8}),
        lps=82,
        band="high",
        completion=0.9,
        stage="growth",
        rfm_cell="5-5-5",
        rfm_segment="Champions",
    ).learner
    low = LearnerScoreFactory(
        learner=LearnerFactory(external_id="low", attributes={"plan": "free"}),
        lps=20,
        band="low",
        completion=0.1,
        stage="at_risk",
        flag_stall=True,
    ).learner
    LearnerFactory(external_id="unscored", marketing_opt_in=False)
    course = CourseFactory(external_id="sql-1")
    EnrollmentFactory(learner=high, course=course, completed_at=AS_OF - timedelta(days=1))
    EnrollmentFactory(learner=low, course=course)
    OrderLineFactory(order__learner=high, product=ProductFactory(sku="COACH"))
    for n in range(3):
        EventFactory(learner=high, kind="login", occurred_at=AS_OF - timedelta(days=n + 1))
    EventFactory(learner=low, kind="login", occurred_at=AS_OF - timedelta(days=12))

    assert members({"field": "lps", "op": "gte", "value": 70}) == {"high"}
    assert members({"field": "completion", "op": "lt", "value": 50}) == {"low"}
    assert members({"field": "lps", "op": "between", "value": [10, 30]}) == {"low"}
    assert members({"field": "band", "op": "in", "value": ["high", "mid"]}) == {"high"}
    assert members({"field": "stage", "op": "in", "value": ["at_risk"]}) == {"low"}
    assert members({"field": "rfm_segment", "op": "in", "value": ["Champions"]}) == {"high"}
    assert members({"field": "rfm_cell", "op": "in", "value": ["5-5-5"]}) == {"high"}
    assert members({"field": "flag", "value": "stall"}) == {"low"}
    assert members({"not": {"field": "flag", "value": "stall"}}) == {"high", "unscored"}
    assert members({"field": "attribute", "key": "plan", "op": "eq", "value": "pro"}) == {"high"}
    assert members({"field": "attribute", "key": "seats", "op": "gte", "value": 5}) == {"high"}
    assert members({"field": "attribute", "key": "plan", "op": "ne", "value": "pro"}) == {
        "low",
        "unscored",
    }
    assert members({"field": "enrolled_in", "value": "sql-1"}) == {"high", "low"}
    assert members({"field": "completed", "value": "sql-1"}) == {"high"}
    assert members({"field": "owns_product", "value": "COACH"}) == {"high"}
    assert members(
        {"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 3}
    ) == {"high"}
    assert members({"field": "last_event_age", "kind": "login", "op": "gte", "value": 10}) == {
        "low",
        "unscored",
    }
    assert members({"field": "last_event_age", "op": "lte", "value": 2}) == {"high"}
    assert members({"field": "reachable"}) == {"high", "low"}
    assert members(
        {
            "all": [
                {"field": "enrolled_in", "value": "sql-1"},
                {
                    "any": [
                        {"field": "band", "value": ["high"]},
                        {"field": "flag", "value": "stall"},
                    ]
                },
            ]
        }
    ) == {"high", "low"}


def test_refresh_records_entries_and_exits_with_their_time():
    ann = LearnerScoreFactory(learner=LearnerFactory(external_id="ann"), band="high").learner
    ben_score = LearnerScoreFactory(learner=LearnerFactory(external_id="ben"), band="mid")
    segment = SegmentFactory(definition={"field": "band", "op": "in", "value": ["high"]})
    first = AS_OF
    assert segment_refresh(segment=segment, as_of=first) == 1
    ben_score.band = "high"
    ben_score.save()
    ann.score.band = "low"
    ann.score.save()
    second = AS_OF + timedelta(hours=1)
    assert segment_refresh(segment=segment, as_of=second) == 1
    rows = sorted(
        SegmentMembership.objects.values_list("learner__external_id", "entered_at", "exited_at")
    )
    assert rows == [("ann", first, second), ("ben", second, None)]
    assert segment_refresh(segment=segment, as_of=second + timedelta(minutes=1)) == 1
    assert SegmentMembership.objects.count() == 2
    ann.score.band = "high"
    ann.score.save()
    third = AS_OF + timedelta(days=1)
    segment_refresh(segment=segment, as_of=third)
    assert sorted(
        SegmentMembership.objects.filter(learner=ann).values_list("entered_at", "exited_at")
    ) == [(first, second), (third, None)]
    segment.refresh_from_db()
    assert (segment.size, segment.refreshed_at) == (2, third)
    assert list(SegmentSnapshot.objects.values_list("day", "size")) == [
        (AS_OF.date(), 1),
        (third.date(), 2),
    ]


def test_scoring_pass_refreshes_segments(api):
    LearnerFactory(external_id="ann")
    segment = SegmentFactory(
        definition={"field": "event_count", "kind": "resource_downloaded", "days": 30, "value": 1}
    )
    score_learners(as_of=AS_OF, full=True)
    assert segment.memberships.count() == 0
    api.post(
        "/api/v1/events/bulk/",
        {
            "items": [
                {
                    "idempotency_key": "d1",
                    "learner": "ann",
                    "kind": "resource_downloaded",
                    "occurred_at": (AS_OF - timedelta(days=1)).isoformat(),
                }
            ]
        },
        format="json",
    )
    score_learners(as_of=AS_OF)
    assert list(segment.memberships.values_list("learner__external_id", "entered_at")) == [
        ("ann", AS_OF)
    ]


# --- Agreement with a plain-Python reference on random data -------------------------------

BANDS = ["high", "mid", "low"]
STAGES = ["onboarding", "growth", "maturity", "renewal", "at_risk"]
PLANS = ["free", "pro", "team"]

learner_rows = st.lists(
    st.fixed_dictionaries(
        {
            "lps": st.integers(min_value=0, max_value=100),
            "band": st.sampled_from(BANDS),
            "stage": st.sampled_from(STAGES),
            "stall": st.booleans(),
            "plan": st.sampled_from(PLANS),
            "scored": st.booleans(),
            "logins": st.integers(min_value=0, max_value=3),
        }
    ),
    min_size=1,
    max_size=12,
)
leaf = st.one_of(
    st.builds(
        lambda op, v: {"field": "lps", "op": op, "value": v},
        st.sampled_from(["gte", "gt", "lte", "lt", "eq"]),
        st.integers(min_value=0, max_value=100),
    ),
    st.builds(
        lambda v: {"field": "band", "op": "in", "value": v},
        st.lists(st.sampled_from(BANDS), min_size=1, max_size=2, unique=True),
    ),
    st.builds(
        lambda v: {"field": "stage", "op": "in", "value": v},
        st.lists(st.sampled_from(STAGES), min_size=1, max_size=2, unique=True),
    ),
    st.just({"field": "flag", "value": "stall"}),
    st.builds(
        lambda v: {"field": "attribute", "key": "plan", "op": "eq", "value": v},
        st.sampled_from(PLANS),
    ),
    st.builds(
        lambda op, v: {"field": "event_count", "kind": "login", "days": 7, "op": op, "value": v},
        st.sampled_from(["gte", "gt", "lte", "lt", "eq"]),
        st.integers(min_value=0, max_value=3),
    ),
)
tree = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=6,
)
OPS = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
}


def reference(node: dict, row: dict) -> bool:
    """What a definition means, evaluated in Python for one learner (None = no score)."""
    if "all" in node:
        return all(reference(child, row) for child in node["all"])
    if "any" in node:
        return any(reference(child, row) for child in node["any"])
    if "not" in node:
        return not reference(node["not"], row)
    field = node["field"]
    if field == "attribute":
        return row["plan"] == node["value"]
    if field == "event_count":
        return OPS[node["op"]](row["logins"], node["value"])
    if not row["scored"]:
        return False
    if field == "lps":
        return OPS[node["op"]](row["lps"], node["value"])
    if field == "band":
        return row["band"] in node["value"]
    if field == "stage":
        return row["stage"] in node["value"]
    if field == "flag":
        return row["stall"]
    raise AssertionError(field)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=learner_rows, definition=tree)
def test_sql_agrees_with_python_reference(django_db_blocker, rows, definition):
    with django_db_blocker.unblock(), transaction.atomic():
        expected = set()
        for n, row in enumerate(rows):
            learner = LearnerFactory(external_id=f"r{n}", attributes={"plan": row["plan"]})
            if row["scored"]:
                LearnerScoreFactory(
                    learner=learner,
                    lps=float(row["lps"]),
                    band=row["band"],
                    stage=row["stage"],
                    flag_stall=row["stall"],
                )
            for minutes in range(row["logins"]):  # inside the 7-day window
                EventFactory(
                    learner=learner, occurred_at=AS_OF - timedelta(days=2, minutes=minutes)
                )
            EventFactory(learner=learner, occurred_at=AS_OF - timedelta(days=8))  # outside
            if reference(definition, row):
                expected.add(f"r{n}")
        # Both plans — grouped scan (bulk) and per-learner subqueries — select the same.
        assert members(definition) == expected
        assert members(definition, bulk=False) == expected
        transaction.set_rollback(True)
    assert Learner.objects.count() == 0


def test_owns_product_ignores_fully_refunded_purchases():
    buyer, refunded = LearnerFactory(external_id="buyer"), LearnerFactory(external_id="refunded")
    product = ProductFactory(sku="TPL")
    OrderLineFactory(order__learner=buyer, product=product)
    OrderLineFactory(
        order__learner=refunded,
        product=product,
        unit_price=Decimal("49.00"),
        refunded_amount=Decimal("49.00"),
    )
    assert members({"field": "owns_product", "value": "TPL"}) == {"buyer"}


def test_a_scoped_pass_refreshes_all_segments_together_like_a_full_refresh():
    course = CourseFactory(external_id="seg-c")
    ModuleFactory(course=course, position=1, external_id="m1")
    learners = []
    for n in range(12):
        learner = LearnerFactory(
            external_id=f"s{n}", attributes={"plan": "pro" if n % 2 else "free"}
        )
        EnrollmentFactory(learner=learner, course=course, enrolled_at=AS_OF - timedelta(days=90))
        for day in range(n % 4):
            EventFactory(learner=learner, kind="login", occurred_at=AS_OF - timedelta(days=day + 1))
        learners.append(learner)
    definitions = {
        "Active": {"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 2},
        "Pro": {"field": "attribute", "key": "plan", "op": "eq", "value": "pro"},
        "Low band": {"field": "band", "op": "in", "value": ["low"]},
        "Inactive": {
            "not": {"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 1}
        },
    }
    for name, definition in definitions.items():
        SegmentFactory(name=name, definition=definition)
    score_learners(full=True, as_of=AS_OF)
    DirtyLearner.objects.all().delete()
    # Some learners change: two more logins for s0 and s1, s2 moves to the pro plan.
    for learner in learners[:2]:
        for minutes in (5, 10):
            EventFactory(
                learner=learner, kind="login", occurred_at=AS_OF - timedelta(minutes=minutes)
            )
    Learner.objects.filter(pk=learners[2].pk).update(attributes={"plan": "pro"})
    DirtyLearner.objects.bulk_create([DirtyLearner(learner=who) for who in learners[:3]])

    result = score_learners(as_of=AS_OF + timedelta(minutes=1))

    assert result.learners == 3
    scoped = set(
        SegmentMembership.objects.filter(exited_at__isnull=True).values_list(
            "segment__name", "learner__external_id"
        )
    )
    sizes = dict(Segment.objects.values_list("name", "size"))
    segments_refresh(as_of=AS_OF + timedelta(minutes=1))  # everyone, one by one
    full = set(
        SegmentMembership.objects.filter(exited_at__isnull=True).values_list(
            "segment__name", "learner__external_id"
        )
    )
    assert scoped == full
    assert sizes == dict(Segment.objects.values_list("name", "size"))
    assert {m for s, m in scoped if s == "Active"} >= {"s0", "s1"}
    assert ("Pro", "s2") in scoped
    assert ("Inactive", "s0") not in scoped
    snapshot = SegmentSnapshot.objects.get(segment__name="Pro", day=AS_OF.date())
    assert snapshot.size == sizes["Pro"] == 7  # s1, s3, s5, s7, s9, s11 and now s2


def test_the_preview_sample_shows_the_lps_as_a_whole_number():
    learner = LearnerFactory(external_id="r-1")
    LearnerScoreFactory(learner=learner, lps=73.8438, band="high")
    preview = segment_preview({"field": "band", "op": "in", "value": ["high"]})
    assert preview["ok"] is True
    assert preview["sample"] == [
        {"external_id": "r-1", "name": learner.name, "lps": 74, "band": "high"}
    ]


def test_a_saved_segment_shows_its_live_count_until_the_refresh_runs(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for n in range(3):
        LearnerScoreFactory(learner=LearnerFactory(external_id=f"h-{n}"), band="high")
    LearnerScoreFactory(band="low")
    response = client.post(
        "/admin/learners/segment/add/",
        {
            "name": "High now",
            "definition": '{"field": "band", "op": "in", "value": ["high"]}',
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    segment = Segment.objects.get(name="High now")
    assert (segment.size, segment.refreshed_at) == (0, None)
    page = "".join(client.get("/admin/learners/segment/").content.decode().split())
    assert "3(livecount;themembershiprefreshhasnotrunonthisdefinitionyet)" in page
    segment_refresh(segment=segment, as_of=timezone.now())
    page = "".join(client.get("/admin/learners/segment/").content.decode().split())
    assert '<tdclass="field-members">3</td>' in page
