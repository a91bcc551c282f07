"""Scores, stages, flags and RFM against hand-computed values."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from learners.models import (
    DirtyLearner,
    EnrollmentScore,
    LearnerScore,
    ScoreHistory,
    ScoringModel,
    ScoringRun,
)
from learners.scoring import score_learners, scoring_model_active, scoring_model_new_version
from tests.factories.expansion import OrderFactory, OrderLineFactory, SubscriptionFactory
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    ModuleFactory,
)

pytestmark = pytest.mark.django_db
AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ago(**delta) -> datetime:
    return AS_OF - timedelta(**delta)


def course_with_modules(n: int, external_id: str):
    course = CourseFactory(external_id=external_id)
    modules = [
        ModuleFactory(course=course, position=p, external_id=f"m{p}", is_final=p == n)
        for p in range(1, n + 1)
    ]
    return course, modules


def event(learner, kind, at, **extra):
    return EventFactory(learner=learner, kind=kind, occurred_at=at, **extra)


@pytest.fixture
def ann():
    """3 of 4 modules, assessments 80 and 90, 2 posts in window (1 older), 1 download,
    6 logins in the last 30 days (the latest 2 days ago)."""
    learner = LearnerFactory(external_id="ann")
    course, modules = course_with_modules(4, "sql-1")
    EnrollmentFactory(learner=learner, course=course, enrolled_at=ago(days=50))
    for module in modules[:3]:
        event(learner, "module_completed", ago(days=20), course=course, module=module)
    event(learner, "module_completed", ago(days=19), course=course, module=modules[0])
    event(learner, "assessment_submitted", ago(days=18), course=course, value=80)
    event(learner, "assessment_submitted", ago(days=17), course=course, value=90)
    event(learner, "community_post", ago(days=5), course=course, properties={"text": "hi"})
    event(learner, "community_question", ago(days=6), course=course, properties={"text": "?"})
    event(learner, "community_post", ago(days=45), course=course, properties={"text": "old"})
    event(learner, "resource_downloaded", ago(days=3), course=course)
    for days in (2, 5, 9, 14, 21, 28):
        event(learner, "login", ago(days=days))
    return learner


def test_hand_computed_learner_progress_score(ann):
    result = score_learners(as_of=AS_OF, full=True)
    assert result.learners == 1
    score = LearnerScore.objects.get(learner=ann)
    # 40×0.75 + 25×0.85 + 15×(2/5) + 10×(1/5) + 10×(½·1 + ½·6/12) = 66.75
    assert score.components() == {
        "completion": 0.75,
        "assessment": 0.85,
        "community": 0.4,
        "downloads": 0.2,
        "login": 0.75,
    }
    assert score.lps == 66.75
    assert score.band == "mid"
    assert score.stage == "growth"
    assert score.flags == []
    assert score.model_version == 1
    assert score.last_event_at == ago(days=2)
    enrollment = EnrollmentScore.objects.get(learner=ann)
    assert (enrollment.lps, enrollment.band, enrollment.completion) == (66.75, "mid", 0.75)
    assert list(ScoreHistory.objects.values_list("day", "lps", "band", "stage")) == [
        (AS_OF.date(), 66.75, "mid", "growth")
    ]


def test_two_courses_no_assessments_and_lapsed_login():
    ben = LearnerFactory(external_id="ben")
    full, full_modules = course_with_modules(4, "x")
    empty, _ = course_with_modules(2, "y")
    EnrollmentFactory(learner=ben, course=full, enrolled_at=ago(days=200))
    EnrollmentFactory(learner=ben, course=empty, enrolled_at=ago(days=100), progress=80)
    for module in full_modules:
        event(ben, "module_completed", ago(days=150), course=full, module=module)
    event(ben, "login", ago(days=20))
    score_learners(as_of=AS_OF, full=True)
    score = LearnerScore.objects.get(learner=ben)
    login = 0.5 * 0.5 + 0.5 * (1 / 12)
    assert score.completion == 0.5
    assert score.login == pytest.approx(login)
    assert score.lps == round(40 * 0.5 + 10 * login, 4) == 22.9167
    assert score.band == "low"
    assert score.stage == "maturity"
    by_course = dict(EnrollmentScore.objects.values_list("course__external_id", "lps"))
    # Modules exist for "y", so its completion is 0/2, not the platform's 80 % progress.
    assert by_course == {"x": round(40 + 10 * login, 4), "y": round(10 * login, 4)}


def test_no_events_and_a_course_without_modules():
    cat = LearnerFactory(external_id="cat")
    course = CourseFactory(external_id="no-modules")
    EnrollmentFactory(
        learner=cat, course=course, enrolled_at=ago(days=10), progress=Decimal("50.00")
    )
    dan = LearnerFactory(external_id="dan")
    score_learners(as_of=AS_OF, full=True)
    assert LearnerScore.objects.get(learner=cat).lps == 20.0  # 40 × 50 % progress
    assert LearnerScore.objects.get(learner=cat).stage == "onboarding"
    empty = LearnerScore.objects.get(learner=dan)
    assert (empty.lps, empty.band, empty.rfm_cell, empty.last_event_at) == (0.0, "low", "", None)


def test_completed_enrollment_counts_as_complete():
    eve = LearnerFactory()
    course, _ = course_with_modules(5, "c")
    EnrollmentFactory(
        learner=eve, course=course, enrolled_at=ago(days=40), completed_at=ago(days=1)
    )
    score_learners(as_of=AS_OF, full=True)
    assert LearnerScore.objects.get(learner=eve).completion == 1.0


def test_window_boundaries_and_events_after_as_of():
    fay = LearnerFactory()
    event(fay, "resource_downloaded", ago(days=30))  # exactly at the window start: counts
    event(fay, "resource_downloaded", ago(days=30, seconds=1))  # just outside
    event(fay, "resource_downloaded", AS_OF + timedelta(seconds=1))  # after as_of: ignored
    event(fay, "login", ago(days=7))  # exactly 7 days: full recency
    score_learners(as_of=AS_OF, full=True)
    score = LearnerScore.objects.get(learner=fay)
    assert score.downloads == 0.2
    assert score.login == pytest.approx(0.5 + 0.5 / 12)


def test_time_zone_of_the_source_does_not_move_the_window(api):
    LearnerFactory(external_id="gus", time_zone="Pacific/Kiritimati")
    # 2026-01-30T12:00:00-10:00 is 2026-01-30T22:00Z: inside a window starting 2026-01-30T12:00Z.
    response = api.post(
        "/api/v1/events/bulk/",
        {
            "items": [
                {
                    "idempotency_key": "tz-1",
                    "learner": "gus",
                    "kind": "resource_downloaded",
                    "occurred_at": "2026-01-30T12:00:00-10:00",
                },
                {
                    "idempotency_key": "tz-2",
                    "learner": "gus",
                    "kind": "resource_downloaded",
                    "occurred_at": "2026-01-30T12:00:00+14:00",
                },
            ]
        },
        format="json",
    )
    assert response.json()["accepted"] == 2
    score_learners(as_of=AS_OF, full=True)
    assert LearnerScore.objects.get(learner__external_id="gus").downloads == 0.2


def weekly_logins(learner, per_week: list[int], *, silent_days: float = 11) -> None:
    """``per_week[0]`` logins in the week just before a silence of ``silent_days``, then the
    weeks before it; spread inside each week."""
    for week, count in enumerate(per_week):
        for n in range(count):
            event(learner, "login", ago(days=silent_days + 7 * week + n * 6 / max(count, 1)))


@pytest.mark.parametrize(
    ("per_week", "stalled"),
    [
        ([3, 3, 3, 3], True),  # seed 000: 3+ logins a week, four weeks running
        ([12, 0, 0, 0], False),  # twelve in one week is not "weekly" (it counted)
        ([3, 3, 3, 2], False),
        ([5, 4, 3, 3], True),
    ],
)
def test_stall_needs_three_logins_in_each_of_four_weeks(per_week, stalled):
    hal = LearnerFactory()
    weekly_logins(hal, per_week)
    score_learners(as_of=AS_OF, full=True)
    score = LearnerScore.objects.get(learner=hal)
    assert score.flag_stall is stalled
    assert (score.stage == "at_risk") is stalled


@pytest.mark.parametrize(("silent_days", "stalled"), [(10, True), (9.99, False), (10.5, True)])
def test_exactly_ten_days_of_silence_is_a_stall(silent_days, stalled):
    ivy = LearnerFactory()
    weekly_logins(ivy, [3, 3, 3, 3], silent_days=silent_days)
    score_learners(as_of=AS_OF, full=True)
    assert LearnerScore.objects.get(learner=ivy).flag_stall is stalled


@pytest.mark.parametrize(
    ("during", "stalled"),
    [
        ("login", False),
        ("module_completed", False),  # learning during a login gap is not silence
        ("feature_used", True),  # neither activity nor silence
        ("support_ticket_opened", True),
    ],
)
def test_what_breaks_the_silence(during, stalled):
    jo = LearnerFactory()
    weekly_logins(jo, [3, 3, 3, 3], silent_days=12)
    event(jo, during, ago(days=5))
    score_learners(as_of=AS_OF, full=True)
    assert LearnerScore.objects.get(learner=jo).flag_stall is stalled


def test_risk_flags_and_their_windows():
    open_ticket, resolved = LearnerFactory(), LearnerFactory()
    event(open_ticket, "support_ticket_resolved", ago(days=5))
    event(open_ticket, "support_ticket_opened", ago(days=2))
    event(resolved, "support_ticket_opened", ago(days=5))
    event(resolved, "support_ticket_resolved", ago(days=2))
    paid_recently, paid_long_ago = LearnerFactory(), LearnerFactory()
    event(paid_recently, "payment_failed", ago(days=13))
    event(paid_long_ago, "payment_failed", ago(days=15))
    declined = LearnerFactory()
    event(declined, "offer_declined", ago(days=29))
    refunded, old_refund = LearnerFactory(), LearnerFactory()
    OrderLineFactory(
        order=OrderFactory(learner=refunded, placed_at=ago(days=10)),
        unit_price=Decimal("50.00"),
        refunded_amount=Decimal("50.00"),
    )
    OrderLineFactory(
        order=OrderFactory(learner=old_refund, placed_at=ago(days=100)),
        unit_price=Decimal("50.00"),
        refunded_amount=Decimal("50.00"),
    )
    score_learners(as_of=AS_OF, full=True)
    flags = {s.learner_id: s.flags for s in LearnerScore.objects.all()}
    assert flags == {
        open_ticket.pk: ["open_ticket"],
        resolved.pk: [],
        paid_recently.pk: ["payment_failed"],
        paid_long_ago.pk: [],
        declined.pk: ["offer_declined"],
        refunded.pk: ["refund"],
        old_refund.pk: [],
    }


def test_stages():
    onboarding, growth, maturity = LearnerFactory(), LearnerFactory(), LearnerFactory()
    course = CourseFactory()
    EnrollmentFactory(learner=onboarding, course=course, enrolled_at=ago(days=30))
    EnrollmentFactory(learner=growth, course=course, enrolled_at=ago(days=31))
    EnrollmentFactory(learner=maturity, course=course, enrolled_at=ago(days=181))
    renewing = LearnerFactory()
    EnrollmentFactory(learner=renewing, course=course, enrolled_at=ago(days=400))
    SubscriptionFactory(
        learner=renewing, started_at=ago(days=300), renews_at=AS_OF + timedelta(days=60)
    )
    far = LearnerFactory()
    EnrollmentFactory(learner=far, course=course, enrolled_at=ago(days=400))
    SubscriptionFactory(learner=far, started_at=ago(days=300), renews_at=AS_OF + timedelta(days=91))
    declining = LearnerFactory()
    EnrollmentFactory(learner=declining, course=course, enrolled_at=ago(days=400))
    for n in range(9):  # 9 events in the 90 days before the last 30: 3 a month on average
        event(declining, "resource_downloaded", ago(days=40 + n * 9))
    event(declining, "resource_downloaded", ago(days=3))  # 1 < 0.5 × 3
    score_learners(as_of=AS_OF, full=True)
    stages = dict(LearnerScore.objects.values_list("learner_id", "stage"))
    assert stages == {
        onboarding.pk: "onboarding",
        growth.pk: "growth",
        maturity.pk: "maturity",
        renewing.pk: "renewal",
        far.pk: "maturity",
        declining.pk: "at_risk",
    }


def test_rfm_quintiles_cells_and_named_segments():
    customers = []
    for n in range(5):
        learner = LearnerFactory(external_id=f"c{n}")
        customers.append(learner)
        for k in range(n + 1):  # c0: 1 order … c4: 5 orders, more recent and larger
            OrderLineFactory(
                order=OrderFactory(learner=learner, placed_at=ago(days=100 - n * 20 - k)),
                unit_price=Decimal(10 * (n + 1)),
            )
    LearnerFactory(external_id="no-orders")
    score_learners(as_of=AS_OF, full=True)
    cells = dict(LearnerScore.objects.values_list("learner__external_id", "rfm_cell"))
    assert cells == {
        "c0": "1-1-1",
        "c1": "2-2-2",
        "c2": "3-3-3",
        "c3": "4-4-4",
        "c4": "5-5-5",
        "no-orders": "",
    }
    names = dict(LearnerScore.objects.values_list("learner__external_id", "rfm_segment"))
    assert names["c4"] == "Champions"
    assert names["c2"] == "Steady mid-value"
    assert names["c0"] == "Recently churned"
    assert names["c1"] == "Everyone else"
    assert names["no-orders"] == ""
    run = ScoringRun.objects.get()
    assert run.rfm_thresholds["orders"] == [1.0, 2.0, 3.0, 4.0]
    assert run.rfm_thresholds["revenue"] == [10.0, 40.0, 90.0, 160.0]


def test_incremental_pass_scores_only_dirty_learners(api, ann):
    other = LearnerFactory(external_id="other")
    score_learners(as_of=AS_OF, full=True)
    before = LearnerScore.objects.get(learner=other).computed_at
    DirtyLearner.objects.all().delete()
    response = api.post(
        "/api/v1/events/bulk/",
        {
            "items": [
                {
                    "idempotency_key": "new-download",
                    "learner": "ann",
                    "kind": "resource_downloaded",
                    "occurred_at": ago(days=1).isoformat(),
                    "course": "sql-1",
                }
            ]
        },
        format="json",
    )
    assert response.json()["accepted"] == 1
    assert list(DirtyLearner.objects.values_list("learner_id", flat=True)) == [ann.pk]
    later = AS_OF + timedelta(minutes=5)
    result = score_learners(as_of=later)
    assert result.learners == 1
    assert DirtyLearner.objects.count() == 0
    assert LearnerScore.objects.get(learner=ann).downloads == 0.4
    assert LearnerScore.objects.get(learner=other).computed_at == before
    assert score_learners(as_of=later).learners == 0


def test_replayed_events_do_not_mark_learners_dirty(api, ann):
    items = [
        {
            "idempotency_key": "once",
            "learner": "ann",
            "kind": "login",
            "occurred_at": ago(days=1).isoformat(),
        }
    ]
    api.post("/api/v1/events/bulk/", {"items": items}, format="json")
    DirtyLearner.objects.all().delete()
    api.post("/api/v1/events/bulk/", {"items": items}, format="json")
    assert DirtyLearner.objects.count() == 0


def test_rescoring_is_idempotent(ann):
    score_learners(as_of=AS_OF, full=True)
    first = list(LearnerScore.objects.values())
    score_learners(as_of=AS_OF, full=True)
    assert list(LearnerScore.objects.values()) == first
    assert ScoreHistory.objects.count() == 1


def test_new_scoring_model_version_changes_weights(ann):
    base = scoring_model_active()
    v2 = scoring_model_new_version(
        base=base, changes={"weight_completion": 50, "weight_assessment": 15}, user=None
    )
    assert (v2.version, v2.is_active) == (2, True)
    assert ScoringModel.objects.get(version=1).is_active is False
    score_learners(as_of=AS_OF, full=True)
    score = LearnerScore.objects.get(learner=ann)
    # 50×0.75 + 15×0.85 + 15×0.4 + 10×0.2 + 10×0.75 = 37.5 + 12.75 + 6 + 2 + 7.5
    assert score.lps == 65.75
    assert score.model_version == 2


def test_band_thresholds_are_editable(ann):
    scoring_model_new_version(base=scoring_model_active(), changes={"band_high": 65})
    score_learners(as_of=AS_OF, full=True)
    assert LearnerScore.objects.get(learner=ann).band == "high"


def test_mean_assessment_is_not_truncated_by_whole_number_scores():
    """Whole-number scores are averaged exactly: 80 + 91 over 2 is 85.5, not 85."""
    learner = LearnerFactory()
    course, _ = course_with_modules(2, "avg")
    EnrollmentFactory(learner=learner, course=course, enrolled_at=ago(days=5))
    event(learner, "assessment_submitted", ago(days=2), course=course, value=80)
    event(learner, "assessment_submitted", ago(days=1), course=course, value=91)
    score_learners(full=True, as_of=AS_OF)
    assert LearnerScore.objects.get(learner=learner).assessment == 0.855
    assert EnrollmentScore.objects.get(enrollment__learner=learner).assessment == 0.855


def test_the_stage_counts_from_the_synced_sign_up_else_the_first_enrolment():
    """Issue 17 item 3, the stage's side (the onboarding guardrail reads the same dates): a
    synced sign-up date wins, then the first enrolment, and when Expansion stored the
    learner (an import) counts only when there is neither."""
    course = CourseFactory()
    new = LearnerFactory(signed_up_at=ago(days=10), created_at=ago(days=400))
    EnrollmentFactory(learner=new, course=course, enrolled_at=ago(days=400))
    veteran = LearnerFactory(signed_up_at=ago(days=400), created_at=ago(days=5))
    EnrollmentFactory(learner=veteran, course=course, enrolled_at=ago(days=10))
    imported = LearnerFactory(created_at=ago(days=5))
    EnrollmentFactory(learner=imported, course=course, enrolled_at=ago(days=100))
    stored = LearnerFactory(created_at=ago(days=5))  # neither: the row's own date

    score_learners(as_of=AS_OF, full=True)

    stages = dict(LearnerScore.objects.values_list("learner_id", "stage"))
    assert stages == {
        new.pk: "onboarding",
        veteran.pk: "maturity",
        imported.pk: "growth",
        stored.pk: "onboarding",
    }


def test_a_delta_pass_moves_a_learner_out_of_onboarding_thirty_days_after_their_sign_up():
    """Nothing else happens to the learner: the sign-up date crossing the 30-day edge alone
    puts them in the delta pass's scope."""
    learner = LearnerFactory(signed_up_at=ago(days=30, hours=6))
    learner.created_at = ago(days=400)
    learner.save()
    EnrollmentFactory(learner=learner, course=CourseFactory(), enrolled_at=ago(days=400))
    earlier = AS_OF - timedelta(hours=12)
    score_learners(as_of=earlier, full=True)
    assert LearnerScore.objects.get(learner=learner).stage == "onboarding"
    DirtyLearner.objects.all().delete()

    delta = score_learners(since=earlier, as_of=AS_OF)

    assert delta.run.kind == "delta"
    assert LearnerScore.objects.get(learner=learner).stage == "growth"
