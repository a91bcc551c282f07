"""Incremental passes split over several connections at once (score_dirty_learners)."""

from datetime import UTC, datetime, timedelta

import pytest

from learners.ingest import events_ingest
from learners.models import (
    DirtyLearner,
    LearnerScore,
    ScoringRun,
    Segment,
    SegmentMembership,
)
from learners.scoring import score_dirty_learners, score_learners
from tests.factories.learners import LearnerFactory, SegmentFactory

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCORE_FIELDS = [
    f.name
    for f in LearnerScore._meta.concrete_fields
    if f.name not in {"id", "learner", "computed_at"}
]


def _history(learners: int) -> None:
    """Learners with logins and downloads: the odd ones active enough for the segment."""
    items = []
    for n in range(learners):
        for k in range(1 + n % 4):
            items.append(
                {
                    "idempotency_key": f"p-{n}-{k}",
                    "learner": f"p-{n}",
                    "kind": "login" if k % 2 == 0 else "resource_downloaded",
                    "occurred_at": (AS_OF - timedelta(days=k, hours=1)).isoformat(),
                }
            )
    assert events_ingest(items=items).accepted == len(items)


def _scores() -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in LearnerScore.objects.order_by("learner_id").values_list(
            "learner_id", *SCORE_FIELDS
        )
    }


@pytest.fixture
def active_segment():
    segment = SegmentFactory(
        name="Logged in twice this week",
        definition={"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 2},
    )
    score_learners(as_of=AS_OF - timedelta(days=30), full=True)  # its first refresh
    return Segment.objects.get(pk=segment.pk)


@pytest.mark.django_db(transaction=True)
def test_parallel_passes_score_disjoint_shards_and_agree_with_one_pass(settings, active_segment):
    settings.SCORING_PARALLEL_MIN_LEARNERS = 10
    for n in range(40):
        LearnerFactory(external_id=f"p-{n}")
    _history(40)
    dirty = set(DirtyLearner.objects.values_list("learner_id", flat=True))
    assert len(dirty) == 40

    result = score_dirty_learners(as_of=AS_OF, parallelism=2)

    assert len(result.passes) == 2
    assert result.learners == 40
    assert sorted(r.learners for r in result.passes) == [20, 20]  # ids alternate by parity
    assert DirtyLearner.objects.count() == 0
    runs = ScoringRun.objects.filter(kind="incremental")
    assert runs.count() == 2
    assert sum(runs.values_list("learners", flat=True)) == 40
    parallel = _scores()
    assert set(parallel) == dirty
    members = set(
        SegmentMembership.objects.filter(segment=active_segment, exited_at=None).values_list(
            "learner__external_id", flat=True
        )
    )
    # Learners n with n % 4 in (2, 3) logged in 1 h and 2 days before (k = 0, 2): those.
    assert members == {f"p-{n}" for n in range(40) if n % 4 >= 2}
    active_segment.refresh_from_db()
    assert active_segment.size == 20

    # One pass from scratch at the same moment changes nothing.
    check = score_learners(as_of=AS_OF, full=True)
    assert check.run.changed == 0
    assert _scores() == parallel


@pytest.mark.django_db(transaction=True)
def test_few_dirty_learners_or_a_new_segment_take_one_pass(settings, active_segment):
    settings.SCORING_PARALLEL_MIN_LEARNERS = 10
    for n in range(12):
        LearnerFactory(external_id=f"p-{n}")
    _history(12)

    # 12 learners: fewer than two shares of 10.
    result = score_dirty_learners(as_of=AS_OF, parallelism=2)
    assert [r.learners for r in result.passes] == [12]

    # Plenty of learners, but a segment never refreshed: its first count is one pass's work.
    for n in range(12, 42):
        LearnerFactory(external_id=f"p-{n}")
    items = [
        {
            "idempotency_key": f"q-{n}",
            "learner": f"p-{n}",
            "kind": "login",
            "occurred_at": (AS_OF - timedelta(hours=2)).isoformat(),
        }
        for n in range(42)
    ]
    assert events_ingest(items=items).accepted == 42
    SegmentFactory(
        name="Pro plan",
        definition={"field": "attribute", "key": "plan", "op": "eq", "value": "pro"},
    )
    result = score_dirty_learners(as_of=AS_OF, parallelism=2)
    assert [r.learners for r in result.passes] == [42]
    assert ScoringRun.objects.filter(kind="incremental").count() == 2
