"""The scheduled delta pass leaves exactly the scores a pass from scratch would."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learners.ingest import events_ingest
from learners.models import (
    DirtyLearner,
    EnrollmentScore,
    Learner,
    LearnerScore,
    RfmSegment,
    ScoringRun,
    SegmentMembership,
)
from learners.scoring import score_learners, score_scheduled, scoring_model_active
from tests.factories.expansion import (
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    ModuleFactory,
    SegmentFactory,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SCORE_FIELDS = [
    f.name
    for f in LearnerScore._meta.concrete_fields
    if f.name not in {"id", "learner", "computed_at"}
]
ENROLLMENT_FIELDS = [
    f.name
    for f in EnrollmentScore._meta.concrete_fields
    if f.name not in {"id", "enrollment", "computed_at"}
]
KINDS = [
    "login",
    "module_completed",
    "assessment_submitted",
    "community_post",
    "resource_downloaded",
    "support_ticket_opened",
    "support_ticket_resolved",
    "payment_failed",
    "offer_declined",
    "feature_used",
]

# Kinds the API takes without a course, module or text.
NEW_KINDS = ["login", "assessment_submitted", "payment_failed", "offer_declined", "feature_used"]


def snapshot() -> dict:
    return {
        "learners": sorted(
            LearnerScore.objects.values_list("learner_id", *SCORE_FIELDS).order_by("learner_id")
        ),
        "enrollments": sorted(
            EnrollmentScore.objects.values_list("enrollment_id", *ENROLLMENT_FIELDS).order_by(
                "enrollment_id"
            )
        ),
        "segments": sorted(
            SegmentMembership.objects.filter(exited_at__isnull=True).values_list(
                "segment_id", "learner_id"
            )
        ),
    }


def edge_windows() -> list[int]:
    """Every window length (days) the active model's scores and stages depend on."""
    m = scoring_model_active()
    return sorted(
        {
            m.activity_window_days,
            m.login_recent_days,
            m.login_lapsed_days,
            m.stall_silent_days,
            m.stall_silent_days + 7 * m.stall_active_weeks,
            m.payment_failed_days,
            m.offer_declined_days,
            30,
            120,
            m.onboarding_days,
            m.growth_days,
            m.refund_days,
        }
    )


def segments() -> None:
    SegmentFactory(
        name="Logged in this week",
        definition={"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 1},
    )
    SegmentFactory(name="At risk", definition={"field": "stage", "op": "in", "value": ["at_risk"]})
    SegmentFactory(
        name="Quiet for 10 days",
        definition={"field": "last_event_age", "op": "gte", "value": 10},
    )


# One learner's history, every time placed near an edge some window crosses between the
# passes: (window index, hours either side of the edge) pairs are resolved against T0.
near_edge = st.tuples(st.integers(0, 11), st.integers(-60, 60))
learner_strategy = st.fixed_dictionaries(
    {
        "events": st.lists(st.tuples(st.sampled_from(KINDS), near_edge), max_size=8),
        "created": near_edge,
        "enrolled": near_edge,
        "completed_hours_after_t0": st.none() | st.integers(-5, 60),
        "renews_hours_after_t0": st.none() | st.integers(-10, 24 * 90 + 60),
        "refunded_order": st.none() | near_edge,
        "new_events": st.lists(
            st.tuples(st.sampled_from(NEW_KINDS), st.integers(1, 60)), max_size=3
        ),
    }
)


def when(edge: tuple[int, int], windows: list[int]) -> datetime:
    index, hours = edge
    return T0 - timedelta(days=windows[index % len(windows)], hours=hours)


def build(rows: list[dict], gap_hours: int) -> tuple[datetime, list[dict]]:
    windows = edge_windows()
    course = CourseFactory(external_id="delta-course")
    modules = [ModuleFactory(course=course, position=p, external_id=f"m{p}") for p in (1, 2, 3)]
    t1 = T0 + timedelta(hours=gap_hours)
    later = []
    for n, row in enumerate(rows):
        learner = LearnerFactory(external_id=f"d{n}", created_at=when(row["created"], windows))
        enrolled = min(when(row["enrolled"], windows), T0 + timedelta(hours=gap_hours))
        completed = None
        if row["completed_hours_after_t0"] is not None:
            completed = max(enrolled, T0 + timedelta(hours=row["completed_hours_after_t0"]))
        EnrollmentFactory(
            learner=learner, course=course, enrolled_at=enrolled, completed_at=completed
        )
        for k, (kind, edge) in enumerate(row["events"]):
            EventFactory(
                learner=learner,
                kind=kind,
                occurred_at=when(edge, windows),
                course=course if kind != "login" else None,
                module=modules[k % 3] if kind == "module_completed" else None,
                value=70.0 + k if kind == "assessment_submitted" else None,
            )
        if row["renews_hours_after_t0"] is not None:
            SubscriptionFactory(
                learner=learner, renews_at=T0 + timedelta(hours=row["renews_hours_after_t0"])
            )
        if row["refunded_order"] is not None:
            order = OrderFactory(learner=learner, placed_at=when(row["refunded_order"], windows))
            OrderLineFactory(order=order, refunded_amount=Decimal("5.00"))
        for k, (kind, hours) in enumerate(row["new_events"]):
            later.append(
                {
                    "idempotency_key": f"new-{n}-{k}",
                    "learner": f"d{n}",
                    "kind": kind,
                    "occurred_at": min(T0 + timedelta(hours=hours), t1).isoformat(),
                    **({"value": 55.0} if kind == "assessment_submitted" else {}),
                }
            )
    # Orders spread over the quintiles, away from every edge, so that RFM cells are filled.
    for n in range(len(rows)):
        order = OrderFactory(
            learner=Learner.objects.get(external_id=f"d{n}"),
            placed_at=T0 - timedelta(days=400 + 17 * n),
        )
        OrderLineFactory(order=order, quantity=1 + n % 3)
    return t1, later


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(learner_strategy, min_size=1, max_size=6), gap_hours=st.integers(1, 50))
def test_delta_pass_equals_a_pass_from_scratch(django_db_blocker, rows, gap_hours):
    with django_db_blocker.unblock(), transaction.atomic():
        segments()
        t1, later = build(rows, gap_hours)
        score_learners(full=True, as_of=T0)
        DirtyLearner.objects.all().delete()  # as if incremental passes had caught up
        if later:
            assert events_ingest(items=later).accepted == len(later)
        delta = score_learners(since=T0, as_of=t1)
        after_delta = snapshot()
        scratch = score_learners(full=True, as_of=t1)
        assert snapshot() == after_delta
        assert scratch.run.changed == 0
        assert delta.run.kind == "delta"
        transaction.set_rollback(True)
    assert Learner.objects.count() == 0


def test_delta_scope_is_exactly_the_learners_time_or_writes_touched():
    segments()
    course = CourseFactory()
    quiet, crossing, written = (LearnerFactory(created_at=T0 - timedelta(days=400)) for _ in "abc")
    for learner in (quiet, crossing, written):
        EnrollmentFactory(learner=learner, course=course, enrolled_at=T0 - timedelta(days=300))
    # quiet: logins far from every edge; crossing: its only login falls out of the 7-day
    # recency window 2 hours after T0; written: gets an event through the API after T0.
    EventFactory(learner=quiet, kind="login", occurred_at=T0 - timedelta(days=3))
    EventFactory(learner=crossing, kind="login", occurred_at=T0 - timedelta(days=7, hours=-2))
    EventFactory(learner=written, kind="login", occurred_at=T0 - timedelta(days=3))
    score_learners(full=True, as_of=T0)
    DirtyLearner.objects.all().delete()
    before = LearnerScore.objects.get(learner=crossing)
    assert (before.login, before.lps) == (0.5 * 1.0 + 0.5 * (1 / 12), 5.4167)

    result = events_ingest(
        items=[
            {
                "idempotency_key": "w1",
                "learner": written.external_id,
                "kind": "resource_downloaded",
                "occurred_at": (T0 + timedelta(hours=1)).isoformat(),
            }
        ]
    )
    assert result.accepted == 1
    delta = score_learners(since=T0, as_of=T0 + timedelta(hours=3))

    assert delta.learners == 2  # crossing and written; quiet is not read at all
    assert delta.run.changed == 2
    after = LearnerScore.objects.get(learner=crossing)
    # Recency drops from "within 7 days" (1.0) to "within 30 days" (0.5).
    assert (after.login, after.lps) == (0.5 * 0.5 + 0.5 * (1 / 12), 2.9167)
    assert LearnerScore.objects.get(learner=written).downloads == pytest.approx(1 / 5)
    assert DirtyLearner.objects.count() == 0


def test_scheduled_pass_chooses_delta_or_from_scratch(settings):
    settings.SCORING_FULL_EVERY_HOURS = 24
    LearnerFactory()
    first = score_scheduled(as_of=T0)
    assert first.run.kind == "full"  # nothing before it
    second = score_scheduled(as_of=T0 + timedelta(hours=1))
    assert second.run.kind == "delta"
    # The RFM map changed: cells must be recomputed for everyone.
    RfmSegment.objects.create(name="New cell", r_min=5, r_max=5)
    assert score_scheduled(as_of=T0 + timedelta(hours=2)).run.kind == "full"
    assert score_scheduled(as_of=T0 + timedelta(hours=3)).run.kind == "delta"
    # A day after the last pass from scratch: fresh RFM bounds.
    assert score_scheduled(as_of=T0 + timedelta(hours=26)).run.kind == "full"
    # Scoring the past again is never a delta.
    assert score_scheduled(as_of=T0 + timedelta(hours=25)).run.kind == "full"
    assert list(ScoringRun.objects.order_by("as_of").values_list("kind", flat=True)) == [
        "full",
        "delta",
        "full",
        "delta",
        "full",
        "full",
    ]


def test_syncs_and_admin_edits_mark_learners_dirty(api):
    learner = LearnerFactory(external_id="sync-1")
    course = CourseFactory(external_id="c-sync")
    EnrollmentFactory(learner=learner, course=course, enrolled_at=T0)
    other = LearnerFactory(external_id="sync-2")
    DirtyLearner.objects.all().delete()

    def dirty() -> list[int]:
        ids = sorted(set(DirtyLearner.objects.values_list("learner_id", flat=True)))
        DirtyLearner.objects.all().delete()
        return ids

    modules = [{"external_id": "m1", "position": 1}]
    response = api.post(
        "/api/v1/courses/bulk/",
        {"items": [{"external_id": "c-sync", "title": "C", "modules": modules}]},
        format="json",
    )
    assert response.json() == {"created": 0, "updated": 1, "errors": []}
    assert dirty() == [learner.id]  # enrolled in the course whose modules changed
    line = {"external_id": "1", "sku": product_sku(), "unit_price": "10.00"}
    order = {"external_id": "o-sync", "learner": "sync-2", "placed_at": T0.isoformat()}
    response = api.post(
        "/api/v1/orders/bulk/", {"items": [{**order, "lines": [line]}]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert dirty() == [other.id]
    learner.name = "Renamed in the admin"
    learner.save()
    assert dirty() == [learner.id]
    assert dirty() == []


def product_sku() -> str:
    return ProductFactory(sku="SKU-SYNC").sku


H = timedelta(hours=1)
D = timedelta(days=1)


def _events(learner, kind, *times):
    for at in times:
        EventFactory(learner=learner, kind=kind, occurred_at=at)


# Each scenario gives one learner a history whose scores, flags or stage change between T0 and
# T0 + 2 h through time alone (nothing is written in between): one per edge of every window.
EDGE_SCENARIOS = {
    "login leaves the 7-day recency window": lambda who, c: _events(who, "login", T0 - 7 * D + H),
    "login leaves the 30-day window": lambda who, c: _events(who, "login", T0 - 30 * D + H),
    "post leaves the activity window": lambda who, c: _events(
        who, "community_post", T0 - 30 * D + H
    ),
    "payment failure ages out": lambda who, c: _events(who, "payment_failed", T0 - 14 * D + H),
    "decline ages out": lambda who, c: _events(who, "offer_declined", T0 - 30 * D + H),
    # The stall: 3+ logins in each of the 4 weeks before 10 days of silence (weeks end at
    # 10, 17, 24 and 31 days ago; the oldest starts at 38).
    "last login falls silent (stall)": lambda who, c: _events(
        who,
        "login",
        T0 - 10 * D + H,
        *[T0 - d * D for d in (12, 14, 18, 20, 22, 25, 27, 29)],
        *[T0 - d * D for d in (32, 34, 36)],
    ),
    "a login moves from week 1 to week 2 (stall)": lambda who, c: _events(
        who,
        "login",
        T0 - 17 * D + H,
        *[T0 - d * D for d in (11, 13, 18, 20, 22, 25, 27, 29)],
        *[T0 - d * D for d in (32, 34, 36)],
    ),
    "oldest login leaves the stall window": lambda who, c: _events(
        who,
        "login",
        T0 - 38 * D + H,
        *[T0 - d * D for d in (11, 13, 15, 18, 20, 22, 25)],
        *[T0 - d * D for d in (27, 29, 33, 35)],
    ),
    "activity leaves the 120-day window": lambda who, c: _events(
        who, "feature_used", T0 - 120 * D + H, *[T0 - 100 * D] * 5
    ),
    "activity leaves the 30-day window": lambda who, c: (
        _events(who, "feature_used", *[T0 - 60 * D] * 6),
        _events(who, "feature_used", T0 - 30 * D + H),
    ),
    "enrolment leaves onboarding": lambda who, c: EnrollmentFactory(
        learner=who, course=c, enrolled_at=T0 - 30 * D + H
    ),
    "enrolment leaves growth": lambda who, c: EnrollmentFactory(
        learner=who, course=c, enrolled_at=T0 - 180 * D + H
    ),
    "learner created leaves onboarding": lambda who, c: Learner.objects.filter(pk=who.pk).update(
        created_at=T0 - 30 * D + H
    ),
    "renewal date passes": lambda who, c: SubscriptionFactory(learner=who, renews_at=T0 + H),
    "renewal date enters the window": lambda who, c: SubscriptionFactory(
        learner=who, renews_at=T0 + 90 * D + H
    ),
    "refunded order leaves the refund window": lambda who, c: OrderLineFactory(
        order=OrderFactory(learner=who, placed_at=T0 - 90 * D + H), refunded_amount=Decimal("1")
    ),
    "event dated after the first pass": lambda who, c: _events(who, "login", T0 + H),
    "enrolment dated after the first pass": lambda who, c: EnrollmentFactory(
        learner=who, course=c, enrolled_at=T0 + H
    ),
    "completion dated after the first pass": lambda who, c: EnrollmentFactory(
        learner=who, course=c, enrolled_at=T0 - 300 * D, completed_at=T0 + H
    ),
}


def test_every_window_edge_is_in_the_delta_scope():
    segments()
    course = CourseFactory()
    ModuleFactory(course=course, position=1)
    learners = {}
    for name, scenario in EDGE_SCENARIOS.items():
        learners[name] = LearnerFactory(created_at=T0 - 400 * D)
        scenario(learners[name], course)
    bystander = LearnerFactory(created_at=T0 - 400 * D)
    _events(bystander, "login", T0 - 3 * D)
    t1 = T0 + 2 * H

    score_learners(full=True, as_of=T0)
    DirtyLearner.objects.all().delete()
    before = {row[0]: row for row in snapshot()["learners"]}
    delta = score_learners(since=T0, as_of=t1)
    after_delta = snapshot()
    score_learners(full=True, as_of=t1)
    assert snapshot() == after_delta
    after = {row[0]: row for row in after_delta["learners"]}
    unchanged = [name for name, who in learners.items() if before[who.id] == after[who.id]]
    assert unchanged == [], [str(before[learners[n].id]) for n in unchanged]
    assert delta.learners == len(EDGE_SCENARIOS)  # and the bystander was not read
    assert before[bystander.id] == after[bystander.id]
