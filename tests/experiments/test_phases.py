"""The split is checked phase by phase, each against the plan its learners were assigned under
(issue 17, item 11: a ramp-up or a retired arm raised a false sample-ratio alarm)."""

from datetime import timedelta

import pytest
from scipy import stats as sps

from experiments.analysis import experiment_results
from experiments.assignment import assign, phase_record
from experiments.cards import arm_retire, experiment_start
from experiments.models import Arm, Phase
from experiments.stats import sample_ratio_mismatch_phased
from learners.models import Learner
from tests.factories.expansion import BASE_TIME
from tests.factories.experiments import ArmFactory, ExperimentFactory, assign_exactly
from tests.factories.learners import LearnerFactory

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def _assign(experiment, counts, *, at):
    for arm, count in counts:
        assign_exactly(experiment, arm, count, at=at)


def test_a_ramp_up_is_no_sample_ratio_mismatch():
    """10 % holdout; control and variant 1 : 1 for a week, then the variant ramped up to 3.
    Assignment followed each plan (within chance): all-time counts against today's weights
    said p = 5.2e-15, "do not trust these results"; phase by phase, p = 0.86."""
    experiment = ExperimentFactory(holdout_percent=10)
    control = ArmFactory(experiment=experiment, name="Control", is_control=True, weight=1)
    variant = ArmFactory(experiment=experiment, name="Variant", weight=1)
    experiment = experiment_start(experiment=experiment, now=BASE_TIME)
    _assign(experiment, [(None, 52), (control, 231), (variant, 217)], at=BASE_TIME + DAY)
    Arm.objects.filter(pk=variant.pk).update(weight=3)
    phase_record(experiment=experiment, now=BASE_TIME + 7 * DAY)
    _assign(experiment, [(None, 96), (control, 236), (variant, 668)], at=BASE_TIME + 8 * DAY)

    result = experiment_results(experiment=experiment, now=BASE_TIME + 30 * DAY)

    # What the check said before: all-time counts against the current plan.
    before = sps.chisquare([148, 467, 885], f_exp=[150, 337.5, 1012.5])
    assert before.pvalue == pytest.approx(5.2218e-15, rel=1e-4)
    first = sps.chisquare([52, 231, 217], f_exp=[50, 225, 225])
    second = sps.chisquare([96, 236, 668], f_exp=[100, 225, 675])
    combined = sps.chi2.sf(first.statistic + second.statistic, 4)
    srm = result["sample_ratio_mismatch"]
    assert srm["flagged"] is False
    assert srm["p_value"] == pytest.approx(combined, rel=1e-12)
    assert round(srm["p_value"], 4) == 0.8623
    assert (srm["chi2"], srm["dof"]) == (pytest.approx(first.statistic + second.statistic), 4)
    assert srm["worst_phase"] == 2
    phases = srm["phases"]
    assert [(p["number"], p["started_at"], p["ended_at"]) for p in phases] == [
        (1, BASE_TIME, BASE_TIME + 7 * DAY),
        (2, BASE_TIME + 7 * DAY, None),
    ]
    assert [
        (g["name"], g["planned_share"], g["observed"], g["expected"]) for g in phases[1]["groups"]
    ] == [
        ("Holdout (no offer)", 0.1, 96, 100.0),
        ("Control", 0.225, 236, 225.0),
        ("Variant", 0.675, 668, 675.0),
    ]
    assert phases[0]["p_value"] == pytest.approx(first.pvalue)
    assert phases[1]["p_value"] == pytest.approx(second.pvalue)


def test_a_retired_arm_is_no_sample_ratio_mismatch():
    """Three arms a third each, then one retired: all-time counts against the current weights
    gave p = 0.00021 (flagged); each phase against its plan, p = 0.64."""
    experiment = ExperimentFactory(holdout_percent=10)
    control = ArmFactory(experiment=experiment, name="Control", is_control=True)
    a = ArmFactory(experiment=experiment, name="A")
    b = ArmFactory(experiment=experiment, name="B")
    experiment = experiment_start(experiment=experiment, now=BASE_TIME)
    _assign(experiment, [(None, 285), (control, 930), (a, 870), (b, 915)], at=BASE_TIME + DAY)
    arm_retire(arm=b, now=BASE_TIME + 5 * DAY)
    _assign(experiment, [(None, 310), (control, 1340), (a, 1350)], at=BASE_TIME + 6 * DAY)

    result = experiment_results(experiment=experiment, now=BASE_TIME + 30 * DAY)

    before = sps.chisquare([595, 2270, 2220], f_exp=[508.5, 2288.25, 2288.25])
    assert round(before.pvalue, 5) == 0.00021
    first = sps.chisquare([285, 930, 870, 915], f_exp=[300, 900, 900, 900])
    second = sps.chisquare([310, 1340, 1350], f_exp=[300, 1350, 1350])
    srm = result["sample_ratio_mismatch"]
    assert srm["p_value"] == pytest.approx(sps.chi2.sf(first.statistic + second.statistic, 5))
    assert round(srm["p_value"], 4) == 0.6374
    assert srm["flagged"] is False
    assert [g["name"] for g in srm["phases"][1]["groups"]] == ["Holdout (no offer)", "Control", "A"]
    weights = list(Phase.objects.filter(experiment=experiment).values_list("number", "weights"))
    assert weights == [
        (1, {str(control.pk): 1, str(a.pk): 1, str(b.pk): 1}),
        (2, {str(control.pk): 1, str(a.pk): 1}),
    ]


def test_a_broken_phase_is_still_flagged():
    experiment = ExperimentFactory(holdout_percent=10)
    control = ArmFactory(experiment=experiment, name="Control", is_control=True)
    variant = ArmFactory(experiment=experiment, name="Variant")
    experiment = experiment_start(experiment=experiment, now=BASE_TIME)
    _assign(experiment, [(None, 50), (control, 225), (variant, 225)], at=BASE_TIME + DAY)
    arm_retire(arm=variant, now=BASE_TIME + 2 * DAY)
    # After the variant was retired, learners still land in it: the plan gives it nothing.
    _assign(experiment, [(None, 50), (control, 450), (variant, 30)], at=BASE_TIME + 3 * DAY)

    srm = experiment_results(experiment=experiment, now=BASE_TIME + 9 * DAY)[
        "sample_ratio_mismatch"
    ]

    assert srm["flagged"] is True
    assert srm["p_value"] == 0.0
    assert srm["worst_phase"] == 2
    assert srm["phases"][0]["p_value"] == 1.0


def test_assignment_records_the_plan_it_assigns_under():
    experiment = ExperimentFactory(status="running", holdout_percent=0, salt="s")
    control = ArmFactory(experiment=experiment, is_control=True)
    variant = ArmFactory(experiment=experiment)
    ids = [learner.pk for learner in LearnerFactory.create_batch(30)]

    assign(experiment=experiment, learners=Learner.objects.filter(pk__in=ids[:10]), now=BASE_TIME)
    assign(
        experiment=experiment, learners=Learner.objects.filter(pk__in=ids[:20]), now=BASE_TIME + DAY
    )
    Arm.objects.filter(pk=variant.pk).update(weight=4)  # changed without telling anyone
    assign(experiment=experiment, learners=Learner.objects.all(), now=BASE_TIME + 2 * DAY)
    same = phase_record(experiment=experiment, now=BASE_TIME + 3 * DAY)

    phases = list(
        Phase.objects.filter(experiment=experiment).values_list(
            "number", "started_at", "ended_at", "weights"
        )
    )
    assert phases == [
        (1, BASE_TIME, BASE_TIME + 2 * DAY, {str(control.pk): 1, str(variant.pk): 1}),
        (2, BASE_TIME + 2 * DAY, None, {str(control.pk): 1, str(variant.pk): 4}),
    ]
    assert same.number == 2


def test_a_phase_never_starts_before_the_one_it_closes():
    experiment = ExperimentFactory(holdout_percent=10)
    arm = ArmFactory(experiment=experiment, is_control=True)
    ArmFactory(experiment=experiment)
    experiment = experiment_start(experiment=experiment, now=BASE_TIME)
    Arm.objects.filter(pk=arm.pk).update(weight=2)

    late = phase_record(experiment=experiment, now=BASE_TIME - DAY)

    assert (late.number, late.started_at) == (2, BASE_TIME)


def test_the_admin_starts_a_phase_when_a_running_cards_weights_change(admin_client):
    experiment = ExperimentFactory(holdout_percent=10, name="Ramp")
    control = ArmFactory(experiment=experiment, name="Control", is_control=True)
    variant = ArmFactory(experiment=experiment, name="Variant")
    experiment = experiment_start(experiment=experiment, now=BASE_TIME)
    data = {
        "name": "Ramp",
        "hypothesis": experiment.hypothesis,
        "variable": "discount",
        "primary_metric": "conversion",
        "holdout_percent": "10",
        "window_days": "14",
        "alpha": "0.05",
        "power": "0.8",
        "sample_size_per_arm": "1000",
        "min_duration_days": "14",
        "testing": "auto",
        "sequential_tuning": "5000",
        "arms-TOTAL_FORMS": "2",
        "arms-INITIAL_FORMS": "2",
        "arms-0-id": str(control.pk),
        "arms-0-experiment": str(experiment.pk),
        "arms-0-name": "Control",
        "arms-0-is_control": "on",
        "arms-0-weight": "1",
        "arms-0-is_active": "on",
        "arms-1-id": str(variant.pk),
        "arms-1-experiment": str(experiment.pk),
        "arms-1-name": "Variant",
        "arms-1-weight": "3",
        "arms-1-is_active": "on",
    }

    response = admin_client.post(f"/admin/experiments/experiment/{experiment.pk}/change/", data)

    assert response.status_code == 302, response.content[:3000]
    phases = list(Phase.objects.filter(experiment=experiment).values_list("number", "weights"))
    assert phases == [
        (1, {str(control.pk): 1, str(variant.pk): 1}),
        (2, {str(control.pk): 1, str(variant.pk): 3}),
    ]
    assert Phase.objects.get(experiment=experiment, number=1).ended_at is not None


def test_the_phased_check_sums_chi_squares_with_their_degrees_of_freedom():
    check = sample_ratio_mismatch_phased(
        [([500, 480, 120], [0.45, 0.45, 0.1]), ([0, 0], [0.5, 0.5]), ([700, 310], [2, 1])]
    )

    a = sps.chisquare([500, 480, 120], f_exp=[495, 495, 110])
    b = sps.chisquare([700, 310], f_exp=[1010 * 2 / 3, 1010 / 3])
    assert (check.chi2, check.dof) == (pytest.approx(a.statistic + b.statistic), 3)
    assert check.p_value == pytest.approx(sps.chi2.sf(a.statistic + b.statistic, 3))
    assert [s.p_value for s in check.phases] == [
        pytest.approx(a.pvalue),
        None,
        pytest.approx(b.pvalue),
    ]
    assert check.worst_phase == 2
    assert check.flagged is False
    # One badly broken phase among healthy ones: flagged even if the sum would dilute it.
    diluted = sample_ratio_mismatch_phased([([500, 500], [1, 1])] * 30 + [([540, 460], [1, 1])])
    assert diluted.p_value > 0.001
    assert diluted.flagged is False
    broken = sample_ratio_mismatch_phased([([500, 500], [1, 1])] * 30 + [([600, 400], [1, 1])])
    assert broken.phases[30].p_value < 0.001 / 31
    assert broken.flagged is True
