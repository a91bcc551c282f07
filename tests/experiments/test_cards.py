from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from experiments.cards import (
    CardError,
    card_missing,
    card_sample_size,
    decision_applied,
    decision_blockers,
    experiment_decide,
    experiment_start,
)
from experiments.models import Experiment, ExperimentSettings
from experiments.stats import sample_size
from tests.factories.expansion import BASE_TIME, OfferFactory
from tests.factories.experiments import (
    ArmFactory,
    ExperimentFactory,
    ExperimentSettingsFactory,
    assign_exactly,
)
from tests.factories.learners import UserFactory

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def test_a_card_cannot_start_without_hypothesis_metric_and_sample_size(admin_user):
    card = ExperimentFactory(
        hypothesis="", primary_metric="", sample_size_per_arm=None, testing="fixed"
    )

    with pytest.raises(CardError) as refused:
        experiment_start(experiment=card)

    assert str(refused.value) == (
        "cannot start without a hypothesis (this offer, to this segment, at this moment, "
        "will …); a primary metric; the required sample size per arm (a fixed horizon needs "
        "one); at least one arm"
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
    # One variant against control: one comparison at alpha, as the analysis tests it (the
    # holdout counted as a group made it alpha / 2 and 4,644, +21 % per arm).
    assert card_sample_size(card) == sample_size(baseline=0.1, mde=0.02) == 3835
    started = experiment_start(experiment=card)
    assert started.status == "running"
    assert started.started_at is not None
    with pytest.raises(CardError, match="only a draft can start"):
        experiment_start(experiment=card)


def test_deciding_records_who_and_why_and_retires_the_losing_offers(admin_user):
    card = ExperimentFactory(
        status="running", sign_off_by=admin_user, started_at=BASE_TIME, sample_size_per_arm=2
    )
    kept, dropped = OfferFactory(), OfferFactory()
    control = ArmFactory(experiment=card, is_control=True, offer=kept)
    variant = ArmFactory(experiment=card, offer=dropped)
    assign_exactly(card, control, 2, at=BASE_TIME)
    assign_exactly(card, variant, 2, at=BASE_TIME)
    ready = BASE_TIME + 15 * DAY

    with pytest.raises(CardError, match="needs a reason"):
        experiment_decide(
            experiment=card, decision="keep_control", reason=" ", user=admin_user, now=ready
        )
    decided = experiment_decide(
        experiment=card,
        decision="keep_control",
        reason="No lift at p < 0.05",
        user=admin_user,
        now=ready,
    )

    assert (decided.status, decided.decision, decided.decided_by) == (
        "decided",
        "keep_control",
        admin_user,
    )
    assert decided.decision_reason == "No lift at p < 0.05"
    assert (decided.override_reason, decided.overridden_by, decided.overridden_at) == (
        "",
        None,
        None,
    )
    variant.refresh_from_db()
    control.refresh_from_db()
    dropped.refresh_from_db()
    kept.refresh_from_db()
    assert (variant.is_active, dropped.is_active) == (False, False)
    assert (control.is_active, kept.is_active) == (True, True)
    with pytest.raises(CardError, match="only a running experiment"):
        experiment_decide(experiment=card, decision="inconclusive", reason="x", user=admin_user)


@pytest.fixture
def early_card(admin_user):
    """A fixed-horizon card five days into its 14: 3 per arm planned, 2 assigned each."""
    card = ExperimentFactory(
        status="running", sign_off_by=admin_user, started_at=BASE_TIME, sample_size_per_arm=3
    )
    control = ArmFactory(experiment=card, name="Control", is_control=True, offer=OfferFactory())
    variant = ArmFactory(experiment=card, name="Bonus", offer=OfferFactory())
    assign_exactly(card, control, 2, at=BASE_TIME)
    assign_exactly(card, variant, 2, at=BASE_TIME)
    return card, control, variant


def test_a_decision_before_the_card_allows_it_is_refused_without_an_override(
    early_card, admin_user
):
    card, control, variant = early_card

    with pytest.raises(CardError) as refused:
        experiment_decide(
            experiment=card,
            decision="roll_out",
            winning_arm=variant,
            reason="Looks great",
            user=admin_user,
            now=BASE_TIME + 5 * DAY,
        )

    assert str(refused.value) == (
        "too early to decide: the card still requires the minimum duration of 14 days "
        "(running 5 days; until 2026-01-19 09:00); the planned sample of 3 learners per group "
        "with their 14-day windows closed; smallest group Control: 2 assigned. To decide "
        "anyway, give the reason for overriding (it is recorded and shown)."
    )
    card.refresh_from_db()
    control.refresh_from_db()
    assert (card.status, card.decision, card.decided_by, card.overridden_by) == (
        "running",
        "",
        None,
        None,
    )
    assert control.is_active is True
    assert control.offer.is_active is True


def test_an_override_is_recorded_and_shown(early_card, admin_user, admin_client):
    card, control, variant = early_card
    now = BASE_TIME + 5 * DAY

    decided = experiment_decide(
        experiment=card,
        decision="roll_out",
        winning_arm=variant,
        reason="The bonus sells",
        override_reason="The discount is losing money every day",
        user=admin_user,
        now=now,
    )

    assert (decided.status, decided.winning_arm, decided.decided_at) == ("decided", variant, now)
    assert (decided.override_reason, decided.overridden_by, decided.overridden_at) == (
        "The discount is losing money every day",
        admin_user,
        now,
    )
    assert decided.override_missing == (
        "the minimum duration of 14 days (running 5 days; until 2026-01-19 09:00); the planned "
        "sample of 3 learners per group with their 14-day windows closed; smallest group "
        "Control: 2 assigned"
    )
    page = admin_client.get(f"/admin/experiments/experiment/{card.pk}/results/")
    assert b"Decided early, overriding the card: admin on 2026-01-10 09:00" in page.content
    assert "“The discount is losing money every day”".encode() in page.content
    change = admin_client.get(f"/admin/experiments/experiment/{card.pk}/change/")
    assert b"The discount is losing money every day" in change.content


def test_only_who_the_card_names_signs_the_decision_off(early_card, admin_user):
    card, _, _ = early_card
    marketer = UserFactory(username="mia")
    unsigned = ExperimentFactory(status="running", started_at=BASE_TIME)
    ArmFactory(experiment=unsigned, is_control=True)
    ready = {"reason": "x", "override_reason": "y", "now": BASE_TIME + DAY}

    with pytest.raises(CardError) as other:
        experiment_decide(experiment=card, decision="inconclusive", user=marketer, **ready)
    with pytest.raises(CardError) as nobody:
        experiment_decide(experiment=unsigned, decision="inconclusive", user=admin_user, **ready)

    assert str(other.value) == "the decision is signed off by admin, not by mia"
    assert str(nobody.value) == (
        "the card names no one to sign the decision off: set 'Sign off by' first"
    )
    card.refresh_from_db()
    unsigned.refresh_from_db()
    assert (card.status, unsigned.status) == ("running", "running")


def test_a_sequential_card_needs_only_its_minimum_duration(admin_user):
    card = ExperimentFactory(
        status="running", sign_off_by=admin_user, started_at=BASE_TIME, sample_size_per_arm=None
    )
    ArmFactory(experiment=card, is_control=True)

    assert decision_blockers(experiment=card, now=BASE_TIME + 13 * DAY) == [
        "the minimum duration of 14 days (running 13 days; until 2026-01-19 09:00)"
    ]
    assert decision_blockers(experiment=card, now=BASE_TIME + 14 * DAY) == []


def test_decision_applied_tells_the_campaigns_what_to_offer(admin_user):
    def decided(decision, *, control=True, winner=None):
        card = ExperimentFactory(status="running", sign_off_by=admin_user, started_at=BASE_TIME)
        arms = [
            ArmFactory(experiment=card, is_control=control and i == 0, offer=OfferFactory())
            for i in range(2)
        ]
        assert decision_applied(experiment=card) is None  # running: nothing to apply
        experiment_decide(
            experiment=card,
            decision=decision,
            winning_arm=arms[winner] if winner is not None else None,
            reason="r",
            override_reason="o",
            user=admin_user,
        )
        card.refresh_from_db()
        return decision_applied(experiment=card), arms

    rolled, arms = decided("roll_out", winner=1)
    kept, kept_arms = decided("keep_control")
    stopped, stopped_arms = decided("inconclusive")
    nothing, _ = decided("keep_control", control=False)

    assert (rolled.winning_arm, rolled.offer, rolled.offer_nothing) == (
        arms[1],
        arms[1].offer,
        False,
    )
    assert rolled.retired_offer_ids == {arms[0].offer_id}
    assert (kept.winning_arm, kept.offer, kept.retired_offer_ids) == (
        kept_arms[0],
        kept_arms[0].offer,
        {kept_arms[1].offer_id},
    )
    assert (stopped.winning_arm, stopped.offer, stopped.retired_offer_ids) == (None, None, set())
    assert (nothing.winning_arm, nothing.offer, nothing.offer_nothing) == (None, None, True)


def test_the_admin_card_results_page_start_and_decision(admin_client, admin_user):
    draft = ExperimentFactory(hypothesis="", sign_off_by=admin_user)
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
    assert b"Fixed-horizon test, planned sample not reached" in running_page.content
    assert b"Too early to decide: the card still requires the minimum duration" in (
        running_page.content
    )

    early = admin_client.post(
        url, {"action": "decide", "decision": "inconclusive", "reason": "Too few"}, follow=True
    )
    draft.refresh_from_db()
    assert draft.status == "running"
    assert b"oo early to decide: the card still requires the minimum duration" in early.content
    admin_client.post(
        url,
        {
            "action": "decide",
            "decision": "inconclusive",
            "reason": "Too few",
            "override_reason": "The course is withdrawn",
        },
    )
    draft.refresh_from_db()
    assert (draft.status, draft.decision, draft.decided_by, draft.overridden_by) == (
        "decided",
        "inconclusive",
        admin_user,
        admin_user,
    )
    assert admin_client.get("/admin/experiments/experiment/").status_code == 200
    assert admin_client.get(f"/admin/experiments/experiment/{draft.pk}/change/").status_code == 200


def test_a_sequential_card_can_start_without_a_sample_size():
    card = ExperimentFactory(sample_size_per_arm=None, holdout_percent=10)
    ArmFactory(experiment=card, is_control=True)
    fixed = ExperimentFactory(sample_size_per_arm=None, testing="fixed")
    ArmFactory(experiment=fixed, is_control=True)

    started = experiment_start(experiment=card)

    assert started.status == "running"
    with pytest.raises(CardError, match="the required sample size per arm"):
        experiment_start(experiment=fixed)
    with pytest.raises(IntegrityError), transaction.atomic():
        Experiment.objects.filter(pk=fixed.pk).update(status="running")


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
            "testing": "auto",
            "sequential_tuning": "5000",
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
    # One arm against the holdout: one comparison.
    assert card.sample_size_per_arm == sample_size(baseline=0.1, mde=0.02) == 3835


def test_the_settings_page_shows_the_global_holdout_comparison(admin_client):
    ExperimentSettingsFactory()

    page = admin_client.get("/admin/experiments/experimentsettings/1/change/")

    assert page.status_code == 200
    assert b"Last 30 days. Holdout: 0 learners" in page.content


def test_the_settings_list_opens_the_one_row_and_nothing_can_be_added(admin_client):
    listed = admin_client.get("/admin/experiments/experimentsettings/")
    add = admin_client.get("/admin/experiments/experimentsettings/add/")

    assert listed.status_code == 302
    assert listed["Location"] == "/admin/experiments/experimentsettings/1/change/"
    assert add.status_code == 403
    row = ExperimentSettings.objects.get()
    assert (row.pk, row.global_holdout_percent, row.comparison_window_days) == (1, 5, 30)
