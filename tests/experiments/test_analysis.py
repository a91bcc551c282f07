"""Intention-to-treat results on a fixture computed by hand."""

from datetime import timedelta
from decimal import Decimal

import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportions_ztest

from campaigns.models import SendEvent
from experiments.analysis import experiment_results
from tests.factories.campaigns import SendFactory
from tests.factories.expansion import BASE_TIME, OrderFactory, OrderLineFactory, ProductFactory
from tests.factories.experiments import ArmFactory, AssignmentFactory, ExperimentFactory
from tests.factories.learners import ConsentChangeFactory

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
    assert result["sample_ratio_mismatch"] == {"p_value": pytest.approx(srm), "flagged": False}
    assert "Fixed-horizon test" in result["peeking_warning"]


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
    from experiments.analysis import global_holdout_results
    from experiments.assignment import bucket
    from tests.factories.experiments import ExperimentSettingsFactory
    from tests.factories.learners import LearnerFactory

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
    from experiments.analysis import cumulative_lift

    experiment, control, variant = fixture

    days = cumulative_lift(experiment=experiment)

    assert [d["day"].isoformat() for d in days] == ["2026-01-05"]
    assert days[0]["rates"] == {str(control.pk): 0.25, str(variant.pk): 0.5, "holdout": 0.5}
    assert days[0]["lift"] == {str(variant.pk): 0.25, "holdout": 0.25}
