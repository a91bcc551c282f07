from collections import Counter

import pytest
from django.db import connection

from experiments.assignment import (
    NotRunning,
    assign,
    bucket,
    bucket_sql,
    global_holdout_q,
    in_global_holdout,
    plan_for,
)
from experiments.models import Assignment
from learners.models import Learner
from tests.factories.experiments import ArmFactory, ExperimentFactory, ExperimentSettingsFactory
from tests.factories.learners import LearnerFactory, LearnerScoreFactory

pytestmark = pytest.mark.django_db


def test_the_bucket_is_the_same_in_python_and_in_sql():
    learners = LearnerFactory.create_batch(50)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {bucket_sql('id')} FROM learners_learner ORDER BY id", ["salt-x"]
        )
        in_sql = dict(cursor.fetchall())
    assert in_sql == {learner.pk: bucket("salt-x", learner.pk) for learner in learners}
    assert (
        bucket("salt-x", 1)
        == int(__import__("hashlib").md5(b"salt-x:1").hexdigest()[:8], 16) % 10000
    )


def test_assignment_follows_the_plan_is_sticky_and_copies_the_band():
    experiment = ExperimentFactory(status="running", holdout_percent=10, salt="fixed")
    control = ArmFactory(experiment=experiment, name="Control", is_control=True, weight=1)
    variant = ArmFactory(experiment=experiment, name="20% off", weight=3)
    learners = LearnerFactory.create_batch(400)
    LearnerScoreFactory(learner=learners[0], band="high")

    first = assign(experiment=experiment, learners=Learner.objects.all())
    variant.is_active = False
    variant.save()
    again = assign(experiment=experiment, learners=Learner.objects.all())

    assert (first, again) == (400, 0)
    plan = plan_for(experiment)  # now without the variant: existing learners keep theirs
    assert plan.holdout == 1000
    rows = {a.learner_id: a for a in Assignment.objects.filter(experiment=experiment)}
    original = {"holdout": (0, 1000), control.pk: (1000, 3250), variant.pk: (3250, 10000)}
    for learner in learners:
        row = rows[learner.pk]
        assert row.bucket == bucket("fixed", learner.pk)
        low, high = original[row.arm_id or "holdout"]
        assert low <= row.bucket < high
    assert rows[learners[0].pk].band == "high"
    assert rows[learners[1].pk].band == ""
    shares = Counter(a.arm_id for a in rows.values())
    assert sum(shares.values()) == 400
    assert shares[variant.pk] > shares[control.pk] > shares[None] > 0


def test_a_draft_or_armless_experiment_assigns_nobody():
    LearnerFactory.create_batch(3)
    draft = ExperimentFactory(status="draft")
    ArmFactory(experiment=draft, is_control=True)
    running = ExperimentFactory(status="running")

    with pytest.raises(NotRunning, match="draft"):
        assign(experiment=draft, learners=Learner.objects.all())
    with pytest.raises(NotRunning, match="no active arm"):
        assign(experiment=running, learners=Learner.objects.all())
    assert Assignment.objects.count() == 0


def test_the_global_holdout_is_the_same_in_python_and_in_sql():
    ExperimentSettingsFactory(global_holdout_percent=20, global_holdout_salt="g")
    learners = LearnerFactory.create_batch(200)

    inside = set(
        Learner.objects.filter(global_holdout_q(outside=False)).values_list("id", flat=True)
    )
    outside = set(Learner.objects.filter(global_holdout_q()).values_list("id", flat=True))

    assert inside == {learner.pk for learner in learners if in_global_holdout(learner.pk)}
    assert inside == {learner.pk for learner in learners if bucket("g", learner.pk) < 2000}
    assert inside | outside == {learner.pk for learner in learners}
    assert not inside & outside
    assert 20 < len(inside) < 60
