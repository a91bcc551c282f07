"""Issue 17: the seeds' plays fire as the seeds say — purposes, RFM do-not-pitch, usage bands
and sources, the stall's key and the boundaries — through the real evaluation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from campaigns.lifecycle import activation_problems
from campaigns.models import Campaign, CampaignStatus, Purpose, Rule, Send
from learners.models import Stage
from tests.campaigns.test_evaluate import NOW, course, evaluate, finisher, sends  # noqa: F401
from tests.factories.campaigns import CampaignFactory
from tests.factories.expansion import (
    OfferFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.factories.experiments import (
    ArmFactory,
    AssignmentFactory,
    ExperimentFactory,
    ExperimentSettingsFactory,
)
from tests.factories.learners import EventFactory, LearnerFactory, LearnerScoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_global_holdout():
    ExperimentSettingsFactory(global_holdout_percent=0)


def stalled(external_id: str, *, lps: float = 20.0) -> object:
    learner = LearnerFactory(external_id=external_id)
    LearnerScoreFactory(learner=learner, lps=lps, stage=Stage.AT_RISK, flag_stall=True)
    EventFactory(learner=learner, kind="login", occurred_at=NOW - timedelta(days=11))
    return learner


def test_stall_recovery_is_re_engagement_and_sends_to_the_at_risk_low_lps_learner():
    """Seed 000's stall play was always stopped as "at risk": re-engagement is exempt from the
    upsell rules (at risk, low LPS), an upsell on the same trigger is not."""
    CampaignFactory(name="Pick up", trigger="stall", purpose=Purpose.REENGAGEMENT)
    CampaignFactory(name="Upsell", trigger="stall", moment__slug="milestone")
    stalled("sam")

    evaluate(now=NOW)

    assert sends() == [
        ("sam", "Pick up", "queued", ""),
        ("sam", "Upsell", "suppressed", Rule.AT_RISK),
    ]


def test_an_event_of_another_kind_during_the_silence_is_not_a_second_stall():
    campaign = CampaignFactory(name="Pick up", trigger="stall", purpose=Purpose.REENGAGEMENT)
    sam = stalled("sam")
    evaluate(now=NOW)
    EventFactory(learner=sam, kind="feature_used", occurred_at=NOW - timedelta(days=2))
    evaluate(now=NOW + timedelta(hours=1))
    keys = list(Send.objects.filter(campaign=campaign).values_list("occurrence_key", flat=True))
    assert len(keys) == 1
    assert keys[0].startswith("stall:")


def test_rfm_do_not_pitch_cells_stop_offers_with_their_rule(course):  # noqa: F811
    no_caps = {"email_cap_day": 0, "email_cap": 0, "email_cap_week": 0}
    CampaignFactory(name="Next course", guardrails=no_caps)
    CampaignFactory(
        name="Come back",
        trigger="final_module",
        purpose=Purpose.REENGAGEMENT,
        moment__slug="x",
        guardrails=no_caps,
    )
    churned = finisher(course, external_id="churned")
    churned.score.rfm_segment = "Recently churned"
    churned.score.save()
    valuable = finisher(course, external_id="valuable")
    valuable.score.rfm_segment = "At-risk previously valuable"
    valuable.score.save()
    champion = finisher(course, external_id="champion")
    champion.score.rfm_segment = "Champions"
    champion.score.save()

    evaluate(now=NOW)

    assert sorted(sends()) == [
        ("champion", "Come back", "queued", ""),
        ("champion", "Next course", "queued", ""),
        ("churned", "Come back", "queued", ""),
        ("churned", "Next course", "suppressed", Rule.RFM_DO_NOT_PITCH),
        ("valuable", "Come back", "queued", ""),
        ("valuable", "Next course", "suppressed", Rule.RFM_DO_NOT_PITCH),
    ]


def test_no_offer_of_a_product_the_learner_already_has(course):  # noqa: F811
    product = ProductFactory(name="SQL Intermediate")
    CampaignFactory(name="Next course", offer=OfferFactory(product=product))
    owner = finisher(course, external_id="owner")
    OrderLineFactory(
        order=OrderFactory(learner=owner, placed_at=NOW - timedelta(days=300)), product=product
    )
    finisher(course, external_id="newcomer")

    evaluate(now=NOW)

    assert sends() == [
        ("owner", "Next course", "suppressed", Rule.OWNS_PRODUCT),
        ("newcomer", "Next course", "queued", ""),
    ]


def _team_at(percent: int, external_id: str) -> object:
    learner = LearnerFactory(external_id=external_id)
    LearnerScoreFactory(learner=learner, lps=75.0)
    SubscriptionFactory(learner=learner, quota_used=percent, quota_limit=100)
    return learner


@pytest.mark.parametrize(
    ("used", "expected"),
    [(69, None), (70, "70"), (85, "70"), (86, None), (99, None)],
)
def test_a_usage_band_has_both_ends(used, expected):
    """Seed 004: "70–85 % of quota" (a 70 % campaign fired at 99 %)."""
    CampaignFactory(
        name="Band",
        trigger="usage_threshold",
        trigger_params={"percent": 70, "upto": 85},
        send_within_hours=24 * 365,
    )
    _team_at(used, "u")
    evaluate(now=NOW)
    rows = list(Send.objects.values_list("occurrence_key", "reason"))
    if expected is None:
        assert rows == []
    else:
        ((key, reason),) = rows
        assert key.split(":")[2] == expected
        assert reason.startswith(f"used {used}% of the plan's quota (band 70–85%)")


def test_seed_002_thresholds_fire_once_each_at_the_highest_crossed():
    CampaignFactory(
        name="80/90/100",
        trigger="usage_threshold",
        trigger_params={"percent": 80, "thresholds": [80, 90, 100]},
        send_within_hours=24 * 365,
        reentry="every",
        guardrails={"email_cap_day": 0, "email_cap": 0, "email_cap_week": 0},
    )
    learner = _team_at(95, "u")
    evaluate(now=NOW)
    sub = learner.subscriptions.get()
    sub.quota_used = 100
    sub.save()
    evaluate(now=NOW + timedelta(hours=1))
    assert sorted(
        k.split(":")[2] for k in Send.objects.values_list("occurrence_key", flat=True)
    ) == [
        "100",
        "90",
    ]


def test_usage_reported_events_are_read_too():
    CampaignFactory(
        name="Quota", trigger="usage_threshold", trigger_params={"percent": 80, "upto": 95}
    )
    learner = LearnerFactory(external_id="api")
    LearnerScoreFactory(learner=learner, lps=75.0)
    EventFactory(
        learner=learner,
        kind="usage_reported",
        occurred_at=NOW - timedelta(hours=1),
        properties={"metric": "api_calls", "used": 900, "limit": 1000},
    )
    EventFactory(
        learner=LearnerScoreFactory(lps=75.0).learner,
        kind="usage_reported",
        occurred_at=NOW - timedelta(hours=1),
        properties={"metric": "api_calls", "used": 990, "limit": 1000},  # above the band
    )
    evaluate(now=NOW)
    assert list(Send.objects.values_list("learner__external_id", "reason")) == [
        ("api", "reported 90% of their api_calls limit used (band 80–95%); LPS 75")
    ]


def test_a_completion_exactly_as_old_as_the_send_window_is_acted_on(course):  # noqa: F811
    CampaignFactory(name="Next course", send_within_hours=24)
    finisher(course, external_id="edge", hours_ago=24)
    finisher(course, external_id="late", hours_ago=24.01)
    evaluate(now=NOW)
    assert sends() == [("edge", "Next course", "queued", "")]


@pytest.mark.parametrize(
    "text", ["What’s next?", "WHAT'S   NEXT for me", "so… what’s\nnext", "What is next"]
)
def test_curriculum_phrases_match_whatever_the_quotes_case_or_spacing(text):
    CampaignFactory(name="Next", trigger="curriculum_exhausted")
    learner = LearnerFactory(external_id="q")
    LearnerScoreFactory(learner=learner, lps=75.0)
    EventFactory(
        learner=learner,
        kind="community_question",
        occurred_at=NOW - timedelta(hours=1),
        properties={"text": text},
    )
    evaluate(now=NOW)
    assert sends() == [("q", "Next", "queued", "")]


def test_an_inactive_offer_is_never_sent_and_a_retired_arm_takes_the_campaigns(course):  # noqa: F811
    """Issue 17 item 7: retiring the losing arm left the campaign sending its offer."""
    experiment = ExperimentFactory(status="running", holdout_percent=0, salt="s")
    winner = OfferFactory(name="Winner")
    retired = ArmFactory(
        experiment=experiment, is_control=True, offer=OfferFactory(name="Loser"), is_active=False
    )
    ArmFactory(experiment=experiment, offer=winner)  # the winning arm, still running
    CampaignFactory(name="Next course", experiment=experiment, offer=winner)
    switched_off = OfferFactory(name="Switched off", is_active=False)
    CampaignFactory(name="Old offer", offer=switched_off, moment__slug="milestone")
    learner = finisher(course, external_id="ann")
    AssignmentFactory(experiment=experiment, learner=learner, arm=retired, assigned_at=NOW)

    evaluate(now=NOW)

    assert sorted(Send.objects.values_list("campaign__name", "status", "rule", "offer__name")) == [
        ("Next course", "queued", "", "Winner"),
        ("Old offer", "suppressed", Rule.OFFER_INACTIVE, "Switched off"),
    ]


def test_an_offer_free_moment_keeps_offers_out_not_the_re_engagement_it_is_for():
    """The "declining engagement" moment is kept free of offers ("re-engage, never upsell")."""
    CampaignFactory(
        name="Pick up",
        trigger="stall",
        purpose=Purpose.REENGAGEMENT,
        moment__slug="at_risk",
        moment__offers_allowed=False,
    )
    CampaignFactory(
        name="Upsell", trigger="stall", moment__slug="at_risk", moment__offers_allowed=False
    )
    stalled("sam", lps=80.0)
    evaluate(now=NOW)
    assert sends() == [
        ("sam", "Pick up", "queued", ""),
        ("sam", "Upsell", "suppressed", Rule.OFFER_FREE_MOMENT),
    ]


def test_a_decided_experiment_gives_its_campaign_the_winners_offer(course):  # noqa: F811
    """Issue 17 item 7: applying a decision updates (or pauses) the campaign."""
    rolled = ExperimentFactory(status="decided", decision="roll_out", holdout_percent=0)
    loser = ArmFactory(experiment=rolled, is_control=True, offer=OfferFactory(name="Loser"))
    winner = ArmFactory(experiment=rolled, offer=OfferFactory(name="Winner"))
    rolled.winning_arm = winner
    rolled.save()
    campaign = CampaignFactory(name="Next course", experiment=rolled, offer=loser.offer)
    held = ExperimentFactory(status="decided", decision="keep_control", holdout_percent=10)
    ArmFactory(experiment=held, offer=OfferFactory(name="Variant"))  # no control arm
    silenced = CampaignFactory(name="Held", experiment=held, moment__slug="milestone")
    finisher(course, external_id="ann")

    evaluate(now=NOW)

    assert Campaign.objects.get(pk=campaign.pk).offer.name == "Winner"
    assert list(Send.objects.values_list("campaign__name", "status", "offer__name")) == [
        ("Next course", "queued", "Winner")
    ]
    silenced.refresh_from_db()
    assert silenced.status == CampaignStatus.PAUSED
    assert "sending nothing won" in silenced.paused_reason


def test_a_re_engagement_campaign_can_go_active_on_an_offer_free_moment():
    moment = {"moment__slug": "at_risk", "moment__offers_allowed": False}
    again = CampaignFactory(name="Pick up", trigger="stall", purpose=Purpose.REENGAGEMENT, **moment)
    upsell = CampaignFactory(name="Upsell", trigger="stall", **moment)
    assert activation_problems(again) == []
    assert "the moment 'Declining engagement' is kept offer-free" in activation_problems(upsell)


def test_target_roles_are_checked_at_save():
    campaign = CampaignFactory(target_roles=["admin", "billing_owner"])
    campaign.clean()
    campaign.target_roles = ["owner"]
    with pytest.raises(ValidationError) as raised:
        campaign.clean()
    assert "target_roles" in raised.value.message_dict


def test_a_send_waiting_for_the_morning_says_so(course):  # noqa: F811
    CampaignFactory(name="Next course")
    finisher(course, external_id="tokyo", zone="Asia/Tokyo")  # 23:00 there at NOW
    finisher(course, external_id="london")
    evaluate(now=NOW)
    reasons = dict(Send.objects.values_list("learner__external_id", "status_reason"))
    assert reasons == {
        "tokyo": "waits for the end of quiet hours in the learner's time zone",
        "london": "",
    }


def test_the_offer_guardrails_stop_a_re_engagement_campaign_that_carries_an_offer(course):  # noqa: F811
    """Issue 17 items 1–2: re-engagement is exempt from at risk and low LPS only. Carrying an
    offer, it is stopped by every offer guardrail, at evaluation (the dispatcher's side:
    test_dispatch); without one, by none of them."""
    no_caps = {"email_cap_day": 0, "email_cap": 0, "email_cap_week": 0}
    certificate = OfferFactory(name="Certificate", product=ProductFactory(name="Certificate"))
    CampaignFactory(
        name="Come back",
        purpose=Purpose.REENGAGEMENT,
        offer=certificate,
        premium_upsell=True,
        guardrails=no_caps,
    )
    CampaignFactory(
        name="Come back, no offer",
        purpose=Purpose.REENGAGEMENT,
        premium_upsell=True,
        moment__slug="milestone",
        guardrails=no_caps,
    )
    finisher(course, external_id="at-risk", stage=Stage.AT_RISK, lps=12.0)
    churned = finisher(course, external_id="churned")
    churned.score.rfm_segment = "Recently churned"
    churned.score.save()
    owner = finisher(course, external_id="owner")
    OrderLineFactory(
        order=OrderFactory(learner=owner, placed_at=NOW - timedelta(days=300)),
        product=certificate.product,
    )
    decliner = finisher(course, external_id="decliner")
    EventFactory(learner=decliner, kind="offer_declined", occurred_at=NOW - timedelta(days=3))
    buyer = finisher(course, external_id="buyer")
    OrderFactory(learner=buyer, placed_at=NOW - timedelta(days=3))
    finisher(course, external_id="new", signed_up_at=NOW - timedelta(days=10))

    evaluate(now=NOW)

    assert sorted(sends()) == [
        ("at-risk", "Come back", "queued", ""),
        ("at-risk", "Come back, no offer", "queued", ""),
        ("buyer", "Come back", "suppressed", Rule.BOUGHT),
        ("buyer", "Come back, no offer", "queued", ""),
        ("churned", "Come back", "suppressed", Rule.RFM_DO_NOT_PITCH),
        ("churned", "Come back, no offer", "queued", ""),
        ("decliner", "Come back", "suppressed", Rule.DECLINED),
        ("decliner", "Come back, no offer", "queued", ""),
        ("new", "Come back", "suppressed", Rule.ONBOARDING),
        ("new", "Come back, no offer", "queued", ""),
        ("owner", "Come back", "suppressed", Rule.OWNS_PRODUCT),
        ("owner", "Come back, no offer", "queued", ""),
    ]


def test_a_re_engagement_campaign_with_a_switched_off_offer_sends_nothing(course):  # noqa: F811
    CampaignFactory(
        name="Come back",
        purpose=Purpose.REENGAGEMENT,
        offer=OfferFactory(name="Retired", is_active=False),
    )
    finisher(course, external_id="ann", stage=Stage.AT_RISK, lps=12.0)
    evaluate(now=NOW)
    assert sends() == [("ann", "Come back", "suppressed", Rule.OFFER_INACTIVE)]


@pytest.mark.parametrize(
    ("purpose", "category", "with_offer", "errors"),
    [
        (Purpose.TRANSACTIONAL, "transactional", False, {}),
        (Purpose.UPSELL, "offers", True, {}),
        (Purpose.REENGAGEMENT, "learning", True, {}),
        (
            Purpose.TRANSACTIONAL,
            "offers",
            True,
            {"category": ["a transactional campaign's category is Transactional"]},
        ),
        (
            Purpose.TRANSACTIONAL,
            "transactional",
            True,
            {"offer": ["a transactional campaign carries no offer"]},
        ),
        (
            Purpose.UPSELL,
            "transactional",
            True,
            {"purpose": ["only a transactional campaign has the Transactional category"]},
        ),
        (
            Purpose.REENGAGEMENT,
            "transactional",
            False,
            {"purpose": ["only a transactional campaign has the Transactional category"]},
        ),
    ],
)
def test_transactional_is_its_purpose_and_its_category_and_no_offer(
    purpose, category, with_offer, errors
):
    """Issue 17 item 1: a transactional label on an offer skipped consent and every marketing
    guardrail. Refused at save (``clean``) and at activation."""
    campaign = CampaignFactory(
        purpose=purpose, category=category, offer=OfferFactory() if with_offer else None
    )
    if errors:
        with pytest.raises(ValidationError) as raised:
            campaign.clean()
        assert raised.value.message_dict == errors
        ((field, (message,)),) = errors.items()
        assert f"{field}: {message}" in activation_problems(campaign)
    else:
        campaign.clean()
        assert activation_problems(campaign) == []


def test_a_mislabelled_transactional_offer_saved_before_the_check_gets_every_guardrail():
    """A row saved before ``clean`` refused the mix (purpose transactional, category offers,
    an offer) is marketing, and as strict as an upsell: the at-risk, LPS 10, recently churned
    learner it used to reach is stopped."""
    CampaignFactory(
        name="Receipt?",
        trigger="stall",
        purpose=Purpose.TRANSACTIONAL,
        category="offers",
        offer=OfferFactory(),
    )
    sam = stalled("sam", lps=10.0)
    sam.score.rfm_segment = "Recently churned"
    sam.score.save()
    evaluate(now=NOW)
    assert sends() == [("sam", "Receipt?", "suppressed", Rule.AT_RISK)]


def test_a_kept_control_gives_its_campaign_the_controls_offer(course):  # noqa: F811
    """Issue 17 item 7, keep control: the control arm's offer goes onto the campaign (not
    only ``decision_applied`` saying so) and is what is sent."""
    kept = ExperimentFactory(status="decided", decision="keep_control", holdout_percent=0)
    control = ArmFactory(experiment=kept, is_control=True, offer=OfferFactory(name="Control"))
    variant = ArmFactory(experiment=kept, offer=OfferFactory(name="Variant"))
    campaign = CampaignFactory(name="Next course", experiment=kept, offer=variant.offer)
    finisher(course, external_id="ann")

    evaluate(now=NOW)

    assert Campaign.objects.get(pk=campaign.pk).offer == control.offer
    assert list(Send.objects.values_list("campaign__name", "status", "offer__name")) == [
        ("Next course", "queued", "Control")
    ]
