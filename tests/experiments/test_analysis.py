"""Intention-to-treat results on a fixture computed by hand."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from campaigns.models import SendEvent
from experiments.analysis import cumulative_lift, experiment_results, global_holdout_results
from experiments.assignment import bucket
from experiments.cards import card_sample_size
from experiments.design import decision_comparisons
from experiments.stats import sample_size, sequential_halfwidth, sequential_p_value
from tests.factories.campaigns import SendFactory
from tests.factories.expansion import BASE_TIME, OrderFactory, OrderLineFactory, ProductFactory
from tests.factories.experiments import (
    ArmFactory,
    AssignmentFactory,
    ExperimentFactory,
    ExperimentSettingsFactory,
    assign_exactly,
)
from tests.factories.learners import ConsentChangeFactory, LearnerFactory

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def buy(assignment, product, *, at, price, refunded="0"):
    order = OrderFactory(learner=assignment.learner, placed_at=at)
    OrderLineFactory(
        order=order, product=product, unit_price=Decimal(price), refunded_amount=Decimal(refunded)
    )


@pytest.fixture
def fixture():
    target = ProductFactory(sku="NEXT")
    other = ProductFactory(sku="OTHER")
    experiment = ExperimentFactory(
        status="running",
        target_product=target,
        holdout_percent=20,
        guardrails=["unsubscribe", "refund", "complaint"],
    )
    control = ArmFactory(experiment=experiment, name="Control", is_control=True, weight=1)
    variant = ArmFactory(experiment=experiment, name="Discount", weight=1)
    c = [AssignmentFactory(experiment=experiment, arm=control, band="mid") for _ in range(4)]
    v = [AssignmentFactory(experiment=experiment, arm=variant, band="high") for _ in range(3)]
    v.append(AssignmentFactory(experiment=experiment, arm=variant, band="mid"))
    h = [AssignmentFactory(experiment=experiment, arm=None, bucket=10) for _ in range(2)]
    # Control: one conversion (100), one order of another product (30, not a conversion),
    # one target order before assignment and one after the window (neither counts).
    buy(c[0], target, at=BASE_TIME + DAY, price="100")
    buy(c[1], other, at=BASE_TIME + 2 * DAY, price="30")
    buy(c[2], target, at=BASE_TIME - DAY, price="100")
    buy(c[3], target, at=BASE_TIME + 15 * DAY, price="100")
    # Variant: two conversions, 80 and 60 of which 60 refunded; an unsubscribe; a complaint.
    buy(v[0], target, at=BASE_TIME + DAY, price="80")
    buy(v[3], target, at=BASE_TIME + 3 * DAY, price="60", refunded="60")
    ConsentChangeFactory(learner=v[1].learner, changed_at=BASE_TIME + DAY)
    send = SendFactory(learner=v[2].learner)
    SendEvent.objects.create(send=send, kind="complained", at=BASE_TIME + 2 * DAY)
    # Holdout: one conversion (50).
    buy(h[0], target, at=BASE_TIME + 5 * DAY, price="50")
    return experiment, control, variant


def test_per_arm_figures_are_intention_to_treat_within_the_window(fixture):
    experiment, control, variant = fixture

    result = experiment_results(experiment=experiment, now=BASE_TIME + 30 * DAY)

    arms = {a["name"]: a for a in result["arms"]}
    assert list(arms) == ["Control", "Discount", "Holdout (no offer)"]
    c, v, h = arms["Control"], arms["Discount"], arms["Holdout (no offer)"]
    assert (c["n"], c["conversions"], c["revenue"]) == (4, 1, 130.0)
    assert (v["n"], v["conversions"], v["revenue"]) == (4, 2, 80.0)
    assert (h["n"], h["conversions"], h["revenue"]) == (2, 1, 50.0)
    assert (c["rate"], v["rate"], h["rate"]) == (0.25, 0.5, 0.5)
    assert c["revenue_per_learner"] == 32.5
    assert v["revenue_per_learner"] == 20.0
    assert v["guardrails"] == {
        "unsubscribe": {"events": 1, "rate": 0.25},
        "refund": {"events": 1, "rate": 0.25},
        "complaint": {"events": 1, "rate": 0.25},
    }
    assert c["guardrails"]["refund"] == {"events": 0, "rate": 0.0}
    assert v["by_band"] == {
        "high": {"n": 3, "conversions": 1, "rate": 1 / 3, "revenue_per_learner": 80 / 3},
        "mid": {"n": 1, "conversions": 1, "rate": 1.0, "revenue_per_learner": 0.0},
    }
    vs = v["vs_control"]
    assert vs["absolute_lift"] == 0.25
    assert vs["p_value"] == pytest.approx(proportions_ztest([2, 1], [4, 4])[1])
    assert vs["revenue_difference"] == -12.5
    welch = sps.ttest_ind([80, 0, 0, 0], [100, 30, 0, 0], equal_var=False)
    assert vs["revenue_p_value"] == pytest.approx(welch.pvalue)
    assert vs["by_band"]["mid"]["absolute_lift"] == 0.75
    assert vs["guardrails"]["refund"]["difference"] == 0.25
    assert vs["guardrails"]["refund"]["worse"] is False  # 1 of 4 is no evidence
    assert c["vs_control"] is None
    assert c["vs_holdout"]["absolute_lift"] == -0.25
    assert result["assigned"] == 10
    assert result["windows_still_open"] == 0
    assert result["sample_size_reached"] is False
    srm = sps.chisquare([4, 4, 2], f_exp=[10 * 0.4, 10 * 0.4, 10 * 0.2]).pvalue
    assert result["sample_ratio_mismatch"]["p_value"] == pytest.approx(srm)
    assert result["sample_ratio_mismatch"]["flagged"] is False
    assert result["peeking_warning"].startswith(
        "Fixed-horizon test, planned sample not reached (1,000 learners per group with their "
        "14-day windows closed; smallest group: Control, 4 assigned"
    )
    assert "Results before it are not to be acted on" in result["peeking_warning"]


def test_a_broken_split_is_flagged(fixture):
    experiment, control, _ = fixture
    for _ in range(40):
        AssignmentFactory(experiment=experiment, arm=control)

    result = experiment_results(experiment=experiment, now=BASE_TIME + 30 * DAY)

    assert result["sample_ratio_mismatch"]["flagged"] is True
    assert result["sample_ratio_mismatch"]["p_value"] < 0.001


def test_the_api_returns_the_results_to_a_read_key_only(fixture, read_api, client):
    experiment, _, _ = fixture

    response = read_api.get(f"/api/v1/experiments/{experiment.pk}/results/")
    missing = read_api.get("/api/v1/experiments/999999/results/")
    anonymous = client.get(f"/api/v1/experiments/{experiment.pk}/results/")

    assert response.status_code == 200
    body = response.json()
    assert [(a["name"], a["n"], a["conversions"]) for a in body["arms"]] == [
        ("Control", 4, 1),
        ("Discount", 4, 2),
        ("Holdout (no offer)", 2, 1),
    ]
    assert body["arms"][1]["vs_control"]["absolute_lift"] == 0.25
    assert len(body["arms"][0]["rate_ci"]) == 2
    assert missing.status_code == 404
    assert anonymous.status_code in (401, 403)


def test_the_global_holdout_is_compared_with_everyone_else():
    ExperimentSettingsFactory(global_holdout_percent=30, global_holdout_salt="g")
    learners = LearnerFactory.create_batch(30)
    held = [x for x in learners if bucket("g", x.pk) < 3000]
    rest = [x for x in learners if bucket("g", x.pk) >= 3000]
    product = ProductFactory()
    now = BASE_TIME + 10 * DAY
    for buyer, price in ((held[0], "40"), (rest[0], "100"), (rest[1], "50")):
        order = OrderFactory(learner=buyer, placed_at=BASE_TIME + 5 * DAY)
        OrderLineFactory(order=order, product=product, unit_price=Decimal(price))
    old = OrderFactory(learner=rest[2], placed_at=BASE_TIME - 30 * DAY)  # outside the window
    OrderLineFactory(order=old, product=product, unit_price=Decimal("999"))

    result = global_holdout_results(now=now)

    assert result["holdout"] == {
        "n": len(held),
        "buyers": 1,
        "rate": 1 / len(held),
        "revenue_per_learner": 40 / len(held),
    }
    assert result["everyone_else"]["n"] == len(rest)
    assert result["everyone_else"]["buyers"] == 2
    assert result["everyone_else"]["revenue_per_learner"] == pytest.approx(150 / len(rest))
    assert result["lift"]["absolute_lift"] == pytest.approx(2 / len(rest) - 1 / len(held))


def test_cumulative_lift_by_day_of_assignment(fixture):
    experiment, control, variant = fixture

    days = cumulative_lift(experiment=experiment)

    assert [d["day"].isoformat() for d in days] == ["2026-01-05"]
    assert days[0]["rates"] == {str(control.pk): 0.25, str(variant.pk): 0.5, "holdout": 0.5}
    assert days[0]["lift"] == {str(variant.pk): 0.25, "holdout": 0.25}


def _converted(assignments, product, count, *, days=1):
    for assignment in assignments[:count]:
        buy(assignment, product, at=assignment.assigned_at + days * DAY, price="10")


@pytest.fixture
def two_variants():
    """Control 10 of 100, A 21 of 100 (z-test p = 0.032), B 12 of 100, a holdout of 12."""
    target = ProductFactory(sku="NEXT")
    experiment = ExperimentFactory(
        status="running",
        target_product=target,
        holdout_percent=10,
        baseline_rate="0.1",
        minimum_detectable_effect="0.02",
        sample_size_per_arm=4644,
        started_at=BASE_TIME,
    )
    control = ArmFactory(experiment=experiment, name="Control", is_control=True)
    a = ArmFactory(experiment=experiment, name="A")
    b = ArmFactory(experiment=experiment, name="B")
    for arm, n, k in ((control, 100, 10), (a, 100, 21), (b, 100, 12), (None, 12, 1)):
        _converted(assign_exactly(experiment, arm, n, at=BASE_TIME), target, k)
    return experiment, control, a, b


def test_the_card_plans_and_the_analysis_tests_with_one_correction(two_variants, admin_client):
    """Two variants against control: two comparisons, each at 0.05 / 2, in the sample size
    (4,644 per arm) and in every interval and p-value of the results — not α/3 on the card
    (the holdout counted as a group) and plain α in the analysis."""
    experiment, control, a, b = two_variants

    result = experiment_results(experiment=experiment, now=BASE_TIME + 30 * DAY)

    assert card_sample_size(experiment) == 4644
    assert card_sample_size(experiment) == math.ceil(
        NormalIndPower().solve_power(
            effect_size=proportion_effectsize(0.12, 0.10), alpha=0.025, power=0.8
        )
    )
    assert result["correction"] == {
        "method": "bonferroni",
        "comparisons": 2,
        "baseline": "control",
        "alpha_per_comparison": 0.025,
        "confidence_percent": 97.5,
        "text": "2 comparisons (each variant against control), each at α = 0.05 / 2 = 0.025 "
        "(Bonferroni)",
        "guardrails_alpha": 0.05,
    }
    arms = {r["name"]: r for r in result["arms"]}
    vs = arms["A"]["vs_control"]
    assert vs["absolute_ci"] == pytest.approx(
        confint_proportions_2indep(21, 100, 10, 100, compare="diff", method="newcomb", alpha=0.025)
    )
    assert vs["primary"] == {
        "metric": "conversion",
        "difference": pytest.approx(0.11),
        "ci": vs["absolute_ci"],
        "p_value": pytest.approx(proportions_ztest([21, 10], [100, 100])[1]),
        "alpha": 0.025,
        "significant": False,  # p = 0.032: "significant" only at the uncorrected 0.05
        "method": "two-proportion z-test, Newcomb's interval",
    }
    assert round(vs["primary"]["p_value"], 4) == 0.0316
    assert arms["A"]["rate_ci"] == pytest.approx(proportion_confint(21, 100, 0.025, "wilson"))
    assert arms["A"]["vs_holdout"]["absolute_ci"] == pytest.approx(
        confint_proportions_2indep(21, 100, 1, 12, compare="diff", method="newcomb", alpha=0.025)
    )
    card = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/results/")
    stated = "2 comparisons (each variant against control), each at α = 0.05 / 2 = 0.025"
    assert f"4,644 learners per arm for {stated}".encode() in card.content
    assert f"Multiple comparisons: {stated}".encode() in page.content
    assert b"Conversion rate by arm (97.5% Wilson interval)" in page.content
    # Rates read as percentages, on the table and on the chart's shared axis.
    low, high = proportion_confint(21, 100, 0.025, "wilson")
    assert f"<td>21.0% [{low:.1%}, {high:.1%}]</td>".encode() in page.content
    assert f"21.0% [{low:.1%}, {high:.1%}]</title>".encode() in page.content
    assert b'class="tick">0%</text>' in page.content


def test_a_card_without_a_control_compares_each_arm_with_the_holdout():
    experiment = ExperimentFactory(baseline_rate="0.1", minimum_detectable_effect="0.02")
    ArmFactory(experiment=experiment, name="A")
    ArmFactory(experiment=experiment, name="B")
    ArmFactory(experiment=experiment, name="C")

    comparisons = decision_comparisons(experiment)

    assert (comparisons.baseline, comparisons.count, comparisons.alpha_each) == (
        "holdout",
        3,
        pytest.approx(0.05 / 3),
    )
    assert card_sample_size(experiment) == sample_size(baseline=0.1, mde=0.02, comparisons=3)


def test_the_fixed_horizon_says_when_its_planned_sample_is_reached(admin_client):
    experiment = ExperimentFactory(
        status="running", sample_size_per_arm=3, holdout_percent=10, started_at=BASE_TIME
    )
    control = ArmFactory(experiment=experiment, name="Control", is_control=True)
    variant = ArmFactory(experiment=experiment, name="Variant")
    assign_exactly(experiment, control, 3, at=BASE_TIME)
    assign_exactly(experiment, variant, 2, at=BASE_TIME)
    assign_exactly(experiment, variant, 1, at=BASE_TIME + 2 * DAY)
    assign_exactly(experiment, None, 1, at=BASE_TIME)  # the holdout is not a decision group

    early = experiment_results(experiment=experiment, now=BASE_TIME + 10 * DAY)
    done = experiment_results(experiment=experiment, now=BASE_TIME + 20 * DAY)

    assert early["testing"]["sequential"] is False
    horizon = early["horizon"]
    assert [(g["name"], g["n"], g["complete_at"]) for g in horizon["groups"]] == [
        ("Control", 3, BASE_TIME + 14 * DAY),
        ("Variant", 3, BASE_TIME + 16 * DAY),
    ]
    assert (horizon["reached"], horizon["reached_at"], horizon["expected_at"]) == (
        False,
        None,
        BASE_TIME + 16 * DAY,
    )
    assert early["sample_size_reached"] is False
    assert early["peeking_warning"] == (
        "Fixed-horizon test, planned sample not reached (3 learners per group with their "
        "14-day windows closed; smallest group: Control, 3 assigned; expected complete around "
        "2026-01-21 at the current pace). Results before it are not to be acted on: the "
        "p-values and intervals are valid once, at the planned sample; checking them "
        "repeatedly and stopping at the first 'significant' look inflates false positives."
    )
    assert (done["horizon"]["reached"], done["horizon"]["reached_at"]) == (
        True,
        BASE_TIME + 16 * DAY,
    )
    assert done["sample_size_reached"] is True
    assert done["peeking_warning"] == (
        "Fixed-horizon test: the planned sample was reached on 2026-01-21 (3 learners in every "
        "group, their 14-day windows closed). Decide on these figures."
    )
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/results/")
    assert b"the planned sample was reached on 2026-01-21" in page.content
    assert b"(reached on 2026-01-21)" in page.content


def test_a_card_without_a_fixed_horizon_is_tested_sequentially(admin_client):
    target = ProductFactory(sku="NEXT")
    experiment = ExperimentFactory(
        status="running",
        target_product=target,
        sample_size_per_arm=None,
        holdout_percent=0,
        sequential_tuning=1000,
        started_at=BASE_TIME,
    )
    control = ArmFactory(experiment=experiment, name="Control", is_control=True)
    variant = ArmFactory(experiment=experiment, name="Variant")
    _converted(assign_exactly(experiment, control, 200, at=BASE_TIME), target, 20)
    _converted(assign_exactly(experiment, variant, 200, at=BASE_TIME + DAY), target, 44)

    result = experiment_results(experiment=experiment, now=BASE_TIME + 30 * DAY)
    days = cumulative_lift(experiment=experiment)

    assert result["testing"] == {
        "sequential": True,
        "tuning": 1000,
        "text": "Sequential testing (always-valid p-values and confidence sequences, "
        "GrowthBook's normal mixture, tuned for 1,000 learners per comparison): valid however "
        "often the results are looked at; decide once the interval excludes zero and the card "
        "has run 14 days.",
    }
    assert result["peeking_warning"] == ""
    primary = result["arms"][1]["vs_control"]["primary"]
    se = math.sqrt(0.22 * 0.78 / 200 + 0.1 * 0.9 / 200)
    half = sequential_halfwidth(se=se, n=400, alpha=0.05, tuning=1000)
    assert primary["ci"] == pytest.approx((0.12 - half, 0.12 + half))
    assert primary["p_value"] == pytest.approx(
        sequential_p_value(difference=0.12, se=se, n=400, alpha=0.05, tuning=1000)
    )
    assert primary["significant"] is True
    assert primary["method"] == "sequential: normal-mixture confidence sequence (always valid)"
    assert primary["p_value"] > proportions_ztest([44, 20], [200, 200])[1]
    # The chart's daily points carry their always-valid interval.
    assert [d["day"].isoformat() for d in days] == ["2026-01-05", "2026-01-06"]
    assert days[0]["interval"] == {}  # no variant assigned yet
    assert days[1]["interval"][str(variant.pk)] == pytest.approx(primary["ci"])
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/results/")
    assert b"Sequential testing (always-valid" in page.content
    assert b"Shaded: the always-valid interval" in page.content
