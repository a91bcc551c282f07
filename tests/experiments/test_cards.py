import pytest
from django.db import IntegrityError, transaction

from experiments.cards import (
    CardError,
    card_missing,
    card_sample_size,
    experiment_decide,
    experiment_start,
)
from experiments.models import Experiment
from experiments.stats import sample_size
from tests.factories.expansion import OfferFactory
from tests.factories.experiments import ArmFactory, ExperimentFactory

pytestmark = pytest.mark.django_db


def test_a_card_cannot_start_without_hypothesis_metric_and_sample_size(admin_user):
    card = ExperimentFactory(hypothesis="", primary_metric="", sample_size_per_arm=None)

    with pytest.raises(CardError) as refused:
        experiment_start(experiment=card)

    assert str(refused.value) == (
        "cannot start without a hypothesis (this offer, to this segment, at this moment, "
        "will …); a primary metric; the required sample size per arm; at least one arm"
    )
    card.refresh_from_db()
    assert (card.status, card.started_at) == ("draft", None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Experiment.objects.filter(pk=card.pk).update(status="running")


def test_a_complete_card_starts_and_its_sample_size_comes_from_statsmodels():
    card = ExperimentFactory(baseline_rate="0.1000", minimum_detectable_effect="0.0200")
    ArmFactory(experiment=card, is_control=True)
    ArmFactory(experiment=card)

    assert card_missing(card) == []
    # Two arms and a holdout: three groups, each comparison at alpha / 2.
    assert card_sample_size(card) == sample_size(baseline=0.1, mde=0.02, arms=3)
    started = experiment_start(experiment=card)
    assert started.status == "running"
    assert started.started_at is not None
    with pytest.raises(CardError, match="only a draft can start"):
        experiment_start(experiment=card)


def test_deciding_records_who_and_why_and_retires_the_losing_offers(admin_user):
    card = ExperimentFactory(status="running")
    kept, dropped = OfferFactory(), OfferFactory()
    control = ArmFactory(experiment=card, is_control=True, offer=kept)
    variant = ArmFactory(experiment=card, offer=dropped)

    with pytest.raises(CardError, match="needs a reason"):
        experiment_decide(experiment=card, decision="keep_control", reason=" ", user=admin_user)
    decided = experiment_decide(
        experiment=card, decision="keep_control", reason="No lift at p < 0.05", user=admin_user
    )

    assert (decided.status, decided.decision, decided.decided_by) == (
        "decided",
        "keep_control",
        admin_user,
    )
    assert decided.decision_reason == "No lift at p < 0.05"
    variant.refresh_from_db()
    control.refresh_from_db()
    dropped.refresh_from_db()
    kept.refresh_from_db()
    assert (variant.is_active, dropped.is_active) == (False, False)
    assert (control.is_active, kept.is_active) == (True, True)
    with pytest.raises(CardError, match="only a running experiment"):
        experiment_decide(experiment=card, decision="inconclusive", reason="x", user=admin_user)


def test_the_admin_card_results_page_start_and_decision(admin_client, admin_user):
    draft = ExperimentFactory(hypothesis="")
    ArmFactory(experiment=draft, name="Control", is_control=True)
    url = f"/admin/experiments/experiment/{draft.pk}/results/"

    page = admin_client.get(url)
    refused = admin_client.post(url, {"action": "start"}, follow=True)

    assert page.status_code == 200
    assert b"Cannot start yet: a hypothesis" in page.content
    assert b"annot start without a hypothesis (this offer" in refused.content
    draft.refresh_from_db()
    assert draft.status == "draft"

    Experiment.objects.filter(pk=draft.pk).update(hypothesis="Graduates buy the cohort.")
    admin_client.post(url, {"action": "start"})
    draft.refresh_from_db()
    assert draft.status == "running"
    running_page = admin_client.get(url)
    assert b"Fixed-horizon test" in running_page.content

    admin_client.post(url, {"action": "decide", "decision": "inconclusive", "reason": "Too few"})
    draft.refresh_from_db()
    assert (draft.status, draft.decision, draft.decided_by) == (
        "decided",
        "inconclusive",
        admin_user,
    )
    assert admin_client.get("/admin/experiments/experiment/").status_code == 200
    assert admin_client.get(f"/admin/experiments/experiment/{draft.pk}/change/").status_code == 200


def test_saving_a_card_in_the_admin_fills_the_sample_size(admin_client):
    response = admin_client.post(
        "/admin/experiments/experiment/add/",
        {
            "name": "Cohort upsell",
            "hypothesis": "Graduates buy the cohort",
            "variable": "discount",
            "primary_metric": "conversion",
            "guardrails": ["refund"],
            "holdout_percent": "10",
            "window_days": "14",
            "baseline_rate": "0.1",
            "minimum_detectable_effect": "0.02",
            "alpha": "0.05",
            "power": "0.8",
            "min_duration_days": "14",
            "arms-TOTAL_FORMS": "1",
            "arms-INITIAL_FORMS": "0",
            "arms-0-name": "Control",
            "arms-0-is_control": "on",
            "arms-0-weight": "1",
            "arms-0-is_active": "on",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    card = Experiment.objects.get(name="Cohort upsell")
    assert card.guardrails == ["refund"]
    # One arm and a holdout: two groups.
    assert card.sample_size_per_arm == sample_size(baseline=0.1, mde=0.02, arms=2) == 3835


def test_the_settings_page_shows_the_global_holdout_comparison(admin_client):
    from tests.factories.experiments import ExperimentSettingsFactory

    ExperimentSettingsFactory()

    page = admin_client.get("/admin/experiments/experimentsettings/1/change/")

    assert page.status_code == 200
    assert b"Last 30 days. Holdout: 0 learners" in page.content


def test_the_settings_list_opens_the_one_row_and_nothing_can_be_added(admin_client):
    from experiments.models import ExperimentSettings

    listed = admin_client.get("/admin/experiments/experimentsettings/")
    add = admin_client.get("/admin/experiments/experimentsettings/add/")

    assert listed.status_code == 302
    assert listed["Location"] == "/admin/experiments/experimentsettings/1/change/"
    assert add.status_code == 403
    row = ExperimentSettings.objects.get()
    assert (row.pk, row.global_holdout_percent, row.comparison_window_days) == (1, 5, 30)
