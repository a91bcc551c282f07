"""Evaluating campaigns: triggers, guardrails in the learner's zone, one offer per moment."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from campaigns.evaluate import campaigns_evaluate
from campaigns.models import GuardrailPolicy, Rule, Send
from campaigns.quiet_hours import zone_clock
from campaigns.triggers import trigger_rows
from experiments.models import Assignment
from learners.models import CategoryOptOut, DirtyLearner, Learner, LearnerScore, Stage
from tests.factories.campaigns import CampaignFactory, JourneyMomentFactory, SendFactory
from tests.factories.expansion import OfferFactory, OrderFactory, SubscriptionFactory
from tests.factories.experiments import ArmFactory, ExperimentFactory, ExperimentSettingsFactory
from tests.factories.learners import (
    AccountFactory,
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    LearnerScoreFactory,
    ModuleFactory,
    SegmentFactory,
    SegmentMembershipFactory,
)
from tests.factories.templates import MessageTemplateFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 14:00 in London, 23:00 in Tokyo


@pytest.fixture(autouse=True)
def no_global_holdout():
    ExperimentSettingsFactory(global_holdout_percent=0)


@pytest.fixture
def course():
    course = CourseFactory(external_id="sql-1", title="SQL Basics")
    ModuleFactory(course=course, position=1, external_id="m1")
    final = ModuleFactory(course=course, position=2, external_id="m2", is_final=True)
    course.final = final
    return course


def finisher(course, *, hours_ago=3, lps=82.0, stage=Stage.GROWTH, zone="Europe/London", **kw):
    """A learner who completed the course's final module ``hours_ago`` hours ago."""
    learner = LearnerFactory(time_zone=zone, **kw)
    EnrollmentFactory(learner=learner, course=course, enrolled_at=NOW - timedelta(days=60))
    LearnerScoreFactory(learner=learner, lps=lps, stage=stage)
    EventFactory(
        learner=learner,
        kind="module_completed",
        course=course,
        module=course.final,
        occurred_at=NOW - timedelta(hours=hours_ago),
    )
    return learner


def _score(learner, **fields):
    return LearnerScore.objects.filter(learner=learner).update(**fields)


def evaluate(**kwargs):
    """Evaluate as after the scoring pass has caught up (no learner waits for fresh scores)."""
    DirtyLearner.objects.all().delete()
    return campaigns_evaluate(**kwargs)


def sends(**filters):
    return list(
        Send.objects.filter(**filters)
        .order_by("learner_id", "campaign_id")
        .values_list("learner__external_id", "campaign__name", "status", "rule")
    )


def test_final_module_completion_becomes_one_queued_send_with_its_reason(course):
    offer = OfferFactory()
    campaign = CampaignFactory(name="Next course", offer=offer)
    ann = finisher(course, external_id="ann")
    finisher(course, external_id="old", hours_ago=25)  # outside the 24-hour send window

    result = evaluate(now=NOW)

    assert (result.candidates, result.queued, dict(result.stopped)) == (1, 1, {})
    send = Send.objects.get()
    assert (send.learner, send.campaign, send.status, send.rule) == (ann, campaign, "queued", "")
    assert send.reason == "completed the final module of SQL Basics; LPS 82"
    assert (send.offer, send.course, send.trigger, send.moment.slug) == (
        offer,
        course,
        "final_module",
        "course_completion",
    )
    assert send.scheduled_for == NOW  # 14:00 in London: not quiet hours
    assert send.template_version == campaign.email_template.versions.get()
    assert send.occurrence_key.startswith("event:")
    # Evaluating again (a retried task, the next minute) answers nothing twice.
    assert evaluate(now=NOW + timedelta(minutes=1)).candidates == 0
    assert Send.objects.count() == 1


def test_a_draft_or_paused_campaign_sends_nothing(course):
    CampaignFactory(status="draft")
    CampaignFactory(status="paused")
    finisher(course)
    assert evaluate(now=NOW).candidates == 0
    assert Send.objects.count() == 0


@pytest.mark.parametrize(
    ("setup", "rule"),
    [
        (
            lambda who: CategoryOptOut.objects.create(learner=who, category="offers"),
            Rule.NOT_REACHABLE,
        ),
        (
            lambda who: _score(who, stage=Stage.AT_RISK),
            Rule.AT_RISK,
        ),
        (lambda who: _score(who, lps=39.9), Rule.LOW_LPS),
        (
            lambda who: _score(who, flag_open_ticket=True),
            Rule.OPEN_TICKET,
        ),
        (
            lambda who: _score(who, flag_payment_failed=True),
            Rule.PAYMENT_FAILED,
        ),
        (
            lambda who: _score(who, flag_refund=True),
            Rule.REFUND,
        ),
        (
            lambda who: EventFactory(
                learner=who, kind="offer_declined", occurred_at=NOW - timedelta(days=29)
            ),
            Rule.DECLINED,
        ),
        (
            lambda who: OrderFactory(learner=who, placed_at=NOW - timedelta(days=13)),
            Rule.BOUGHT,
        ),
    ],
)
def test_each_guardrail_stops_the_send_and_records_its_rule(course, setup, rule):
    CampaignFactory(name="Next course")
    learner = finisher(course, external_id="ann")
    setup(learner)

    result = evaluate(now=NOW)

    assert (result.queued, dict(result.stopped)) == (0, {rule: 1})
    assert sends() == [("ann", "Next course", "suppressed", rule)]
    assert Send.objects.get().status_reason == Rule(rule).label


@pytest.mark.parametrize(
    ("setup"),
    [
        lambda who: EventFactory(
            learner=who, kind="offer_declined", occurred_at=NOW - timedelta(days=31)
        ),
        lambda who: OrderFactory(learner=who, placed_at=NOW - timedelta(days=15)),
        lambda who: _score(who, lps=40.0),
    ],
)
def test_just_outside_a_guardrail_the_send_goes(course, setup):
    CampaignFactory()
    setup(finisher(course))
    assert evaluate(now=NOW).queued == 1


def test_guardrail_overrides_and_transactional_exemption(course):
    CampaignFactory(name="Strict", guardrails={"min_lps": 90})
    receipt = CampaignFactory(
        name="Certificate",
        category="transactional",
        purpose="transactional",
        moment__slug="post_purchase",
    )
    learner = finisher(course, external_id="ann", marketing_opt_in=False)

    evaluate(now=NOW)

    assert sends() == [
        ("ann", "Strict", "suppressed", Rule.NOT_REACHABLE),
        ("ann", "Certificate", "queued", ""),
    ]
    assert learner.sends.get(campaign=receipt).category == "transactional"


def test_offer_free_moment_and_onboarding_premium_upsell(course):
    CampaignFactory(name="Mid-ticket", moment__slug="support_open", moment__offers_allowed=False)
    CampaignFactory(name="Premium", premium_upsell=True, moment__slug="milestone")
    # Signed up on the platform 10 days ago: onboarding. Stored by Expansion 10 days ago (an
    # import) but enrolled for 60 days: not onboarding (the guardrail read the row's creation).
    finisher(course, external_id="new", signed_up_at=NOW - timedelta(days=10))
    finisher(course, external_id="imported", created_at=NOW - timedelta(days=10))

    evaluate(now=NOW)

    assert sends() == [
        ("new", "Mid-ticket", "suppressed", Rule.OFFER_FREE_MOMENT),
        ("new", "Premium", "suppressed", Rule.ONBOARDING),
        ("imported", "Mid-ticket", "suppressed", Rule.OFFER_FREE_MOMENT),
        ("imported", "Premium", "queued", ""),
    ]


def test_one_offer_per_moment_highest_priority_wins(course):
    CampaignFactory(name="Low", priority=50)
    CampaignFactory(name="High", priority=80)
    finisher(course, external_id="ann")

    result = evaluate(now=NOW)

    assert sends() == [
        ("ann", "Low", "suppressed", Rule.SUPERSEDED),
        ("ann", "High", "queued", ""),
    ]
    assert result.stopped == {Rule.SUPERSEDED: 1}
    # Two triggers at once: each priority raised by the policy's boost (10).
    assert sorted(Send.objects.values_list("priority", flat=True)) == [60, 90]


def test_rolling_cap_holds_inside_one_evaluation(course):
    """listmonk #2184 let 3 through a cap of 2: three campaigns at once, cap 2 → exactly 2."""
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(
        email_cap=2, email_cap_day=0, email_cap_week=0
    )
    for n, slug in enumerate(["course_completion", "milestone", "renewal"]):
        CampaignFactory(name=f"C{n}", priority=10 * n, moment__slug=slug)
    finisher(course, external_id="ann")

    evaluate(now=NOW)

    assert sends() == [
        ("ann", "C0", "suppressed", Rule.CAP_ROLLING),
        ("ann", "C1", "queued", ""),
        ("ann", "C2", "queued", ""),
    ]


def test_caps_apply_in_order_each_to_what_the_one_before_let_through(course):
    """Rolling, then day: a candidate the rolling cap stops takes no place under the day cap."""
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(
        email_cap=5, email_cap_day=1, email_cap_week=0
    )
    CampaignFactory(name="Strict", priority=80, guardrails={"email_cap": 1})
    CampaignFactory(name="Loose", priority=20, moment__slug="milestone")
    CampaignFactory(name="Third", priority=10, moment__slug="renewal")
    learner = finisher(course, external_id="ann")
    SendFactory(learner=learner, status="sent", created_at=NOW - timedelta(days=3))

    result = evaluate(now=NOW)

    assert sends(campaign__isnull=False) == [
        ("ann", "Strict", "suppressed", Rule.CAP_ROLLING),  # 1 sent in 7 days, cap 1
        ("ann", "Loose", "queued", ""),  # first under the day cap among those still standing
        ("ann", "Third", "suppressed", Rule.CAP_DAY),
    ]
    assert result.stopped == {Rule.CAP_ROLLING: 1, Rule.CAP_DAY: 1}


@pytest.mark.parametrize(
    ("earlier", "expected"),
    [
        # (hours before NOW of earlier sends) → does the new one go? cap 2 in 7 days
        ([24 * 7, 24], "queued"),  # exactly 7 days ago has left the window
        ([24 * 7 - 1, 24], "suppressed"),
        ([24], "queued"),
    ],
)
def test_rolling_cap_boundary(course, earlier, expected):
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(
        email_cap=2, email_cap_day=0, email_cap_week=0
    )
    campaign = CampaignFactory(name="Next course")
    learner = finisher(course, external_id="ann")
    for hours in earlier:
        SendFactory(learner=learner, status="sent", created_at=NOW - timedelta(hours=hours))
    # Suppressed and failed sends never count.
    SendFactory(learner=learner, status="suppressed", created_at=NOW - timedelta(hours=2))
    SendFactory(learner=learner, status="failed", created_at=NOW - timedelta(hours=2))

    evaluate(now=NOW)

    assert Send.objects.get(campaign=campaign).status == expected


@pytest.mark.parametrize(
    ("earlier_local", "expected"),
    [
        # New York is UTC−5 on 2 March; NOW is 09:00 there.
        ((2026, 3, 1, 23, 30), "queued"),  # yesterday, local
        ((2026, 3, 2, 0, 30), "suppressed"),  # today, local (05:30 UTC)
    ],
)
def test_calendar_day_cap_in_the_learners_zone(course, earlier_local, expected):
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(
        email_cap=10, email_cap_day=1, email_cap_week=0
    )
    campaign = CampaignFactory(name="Next course")
    learner = finisher(course, external_id="ann", zone="America/New_York")
    SendFactory(
        learner=learner,
        status="sent",
        created_at=datetime(*earlier_local, tzinfo=ZoneInfo("America/New_York")),
    )

    evaluate(now=NOW)

    send = Send.objects.get(campaign=campaign)
    assert (send.status, send.rule) == (
        (expected, "") if expected == "queued" else (expected, Rule.CAP_DAY)
    )


def test_quiet_hours_defer_to_the_morning_in_the_learners_zone(course):
    CampaignFactory(name="Next course")
    finisher(course, external_id="kenji", zone="Asia/Tokyo")  # 23:00 in Tokyo

    evaluate(now=NOW)

    send = Send.objects.get()
    assert (send.status, send.rule) == ("queued", "")  # deferred, never dropped
    assert send.scheduled_for == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 08:00 on 3 March


def test_in_app_offers_keep_no_quiet_hours_and_their_own_daily_cap(course):
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(in_app_cap_day=1)
    for name, slug in (("Card A", "course_completion"), ("Card B", "milestone")):
        CampaignFactory(
            name=name,
            moment__slug=slug,
            email_template=None,
            in_app_template=MessageTemplateFactory(channel="in_app"),
        )
    kenji = finisher(course, external_id="kenji", zone="Asia/Tokyo")  # 23:00 there
    # An email today does not count against the in-app cap.
    SendFactory(learner=kenji, status="sent", created_at=NOW - timedelta(hours=1))

    evaluate(now=NOW)

    assert sends(channel="in_app") == [
        ("kenji", "Card A", "queued", ""),
        ("kenji", "Card B", "suppressed", Rule.CAP_DAY),
    ]
    scheduled = set(Send.objects.filter(channel="in_app").values_list("scheduled_for", flat=True))
    assert scheduled == {NOW}


def test_zone_clock_bounds():
    clock = zone_clock(
        "Asia/Tokyo", NOW, GuardrailPolicy().quiet_start, GuardrailPolicy().quiet_end
    )
    assert clock.send_at == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    # The local day of the send (3 March in Tokyo) and its Monday-based week.
    assert clock.day_start == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert clock.day_end == datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    assert clock.week_start == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    early = zone_clock("Europe/London", datetime(2026, 3, 2, 6, 0, tzinfo=UTC), *_quiet())
    assert early.send_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert zone_clock("Europe/London", NOW, *_quiet()).send_at == NOW


def _quiet():
    policy = GuardrailPolicy()
    return policy.quiet_start, policy.quiet_end


def test_experiment_holdout_and_arms(course):
    experiment = ExperimentFactory(status="running", holdout_percent=50, salt="s")
    arm = ArmFactory(experiment=experiment, is_control=True, offer=OfferFactory(name="Arm offer"))
    CampaignFactory(name="Next course", experiment=experiment)
    learners = [finisher(course, external_id=f"l{n}") for n in range(20)]

    result = evaluate(now=NOW)

    held = set(
        Assignment.objects.filter(experiment=experiment, arm__isnull=True).values_list(
            "learner_id", flat=True
        )
    )
    assert 0 < len(held) < 20
    assert Assignment.objects.filter(experiment=experiment).count() == 20
    assert result.stopped == {Rule.HOLDOUT: len(held)}
    for learner in learners:
        send = learner.sends.get()
        if learner.pk in held:
            assert (send.status, send.rule, send.arm) == ("suppressed", Rule.HOLDOUT, None)
        else:
            assert (send.status, send.arm, send.offer.name) == ("queued", arm, "Arm offer")


def test_dry_run_reports_and_writes_nothing(course):
    experiment = ExperimentFactory(status="running", holdout_percent=0)
    ArmFactory(experiment=experiment, is_control=True)
    campaign = CampaignFactory(name="Next course", experiment=experiment, status="draft")
    finisher(course, external_id="ann")
    finisher(course, external_id="bob", lps=20.0)

    result = evaluate(now=NOW, campaigns=[campaign], dry_run=True, sample=10)

    assert (result.candidates, result.queued, dict(result.stopped)) == (2, 1, {Rule.LOW_LPS: 1})
    assert [(row["learner"], row["rule"]) for row in result.sample] == [
        ("ann", ""),
        ("bob", Rule.LOW_LPS),
    ]
    assert result.sample[0]["detail"] == "completed the final module of SQL Basics"
    assert Send.objects.count() == 0
    assert Assignment.objects.count() == 0


def test_audience_segment_restricts_the_trigger(course):
    segment = SegmentFactory()
    CampaignFactory(name="Members only", segment=segment)
    inside = finisher(course, external_id="in")
    finisher(course, external_id="out")
    SegmentMembershipFactory(segment=segment, learner=inside, entered_at=NOW - timedelta(days=1))

    evaluate(now=NOW)

    assert sends() == [("in", "Members only", "queued", "")]


def test_renewal_and_usage_triggers_reach_an_accounts_learners():
    account = AccountFactory()
    team = [LearnerFactory(account=account, external_id=f"t{n}") for n in range(2)]
    for learner in team:
        LearnerScoreFactory(learner=learner, lps=75.0)
    sub = SubscriptionFactory(
        learner=None,
        account=account,
        renews_at=NOW + timedelta(days=75),
        quota_used=85,
        quota_limit=100,
    )
    every = {"one_per_account": False}  # every member, not one per account (the default)
    CampaignFactory(name="Renewal", trigger="renewal", moment__slug="renewal", **every)
    CampaignFactory(
        name="Quota 80",
        trigger="usage_threshold",
        trigger_params={"percent": 80},
        moment__slug="milestone",
        send_within_hours=24 * 365 * 10,
        **every,
    )
    CampaignFactory(
        name="Quota 90",
        trigger="usage_threshold",
        trigger_params={"percent": 90},
        moment__slug="product_page",
        send_within_hours=24 * 365 * 10,
        **every,
    )

    evaluate(now=NOW)

    # Quota 90 is not reached (85 of 100). Each learner triggers two moments at once, and the
    # default policy allows one email a calendar day: the older campaign wins the tie.
    assert sorted(sends()) == [
        ("t0", "Quota 80", "suppressed", Rule.CAP_DAY),
        ("t0", "Renewal", "queued", ""),
        ("t1", "Quota 80", "suppressed", Rule.CAP_DAY),
        ("t1", "Renewal", "queued", ""),
    ]
    assert Send.objects.get(learner=team[0], campaign__name="Renewal").occurrence_key.startswith(
        f"renewal:{sub.pk}:"
    )


def test_trigger_parameters_are_checked_at_save():
    campaign = CampaignFactory.build(
        trigger="usage_threshold",
        trigger_params={"percent": "lots", "colour": 1},
        moment=JourneyMomentFactory(slug="milestone"),
        guardrails={"email_cap": 1, "nonsense": 2},
    )
    with pytest.raises(ValidationError) as error:
        campaign.clean()
    assert error.value.message_dict == {
        "trigger_params": ["unknown parameter 'colour'", "percent: must be int"]
    }
    campaign.trigger_params = {"percent": 80}
    with pytest.raises(ValidationError) as error:
        campaign.clean()
    assert "unknown guardrail(s) nonsense" in error.value.message_dict["guardrails"][0]


def test_a_learner_waiting_for_fresh_scores_is_left_for_the_next_evaluation(course):
    CampaignFactory(name="Next course")
    ann = finisher(course, external_id="ann")
    DirtyLearner.objects.all().delete()
    DirtyLearner.objects.create(learner=ann)  # new data, not scored yet

    assert campaigns_evaluate(now=NOW).candidates == 0
    assert Send.objects.count() == 0

    DirtyLearner.objects.all().delete()  # the scoring pass ran
    assert campaigns_evaluate(now=NOW + timedelta(minutes=1)).queued == 1


def test_a_card_dismissed_today_counts_against_the_in_app_cap(course):
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(in_app_cap_day=1)
    card = CampaignFactory(
        name="Card", email_template=None, in_app_template=MessageTemplateFactory(channel="in_app")
    )
    ann = finisher(course, external_id="ann")
    SendFactory(
        learner=ann,
        campaign=card,
        channel="in_app",
        status="dismissed",
        created_at=NOW - timedelta(hours=1),
    )

    evaluate(now=NOW)

    assert Send.objects.exclude(status="dismissed").get().rule == Rule.CAP_DAY


@pytest.mark.parametrize(
    ("later", "test_send", "expected"),
    [
        # cap 2 in 7 days: one sent 3 days ago; a retry queued for 2 h from now shares the
        # window with a send now (issue 16: all three passed) → the new one is stopped.
        (timedelta(hours=2), False, "suppressed"),
        (timedelta(days=7), False, "queued"),  # exactly 7 days on has left the window
        (None, True, "queued"),  # a test send to the marketer never counts
    ],
)
def test_the_rolling_cap_counts_sends_scheduled_later_and_never_test_sends(
    course, later, test_send, expected
):
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(
        email_cap=2, email_cap_day=0, email_cap_week=0
    )
    campaign = CampaignFactory(name="Next course")
    learner = finisher(course, external_id="ann")
    SendFactory(learner=learner, status="sent", created_at=NOW - timedelta(days=3))
    if later is not None:
        SendFactory(
            learner=learner,
            status="queued",
            created_at=NOW - timedelta(hours=1),
            scheduled_for=NOW + later,
        )
    if test_send:
        SendFactory(learner=learner, status="sent", is_test=True, created_at=NOW)

    evaluate(now=NOW)

    assert Send.objects.get(campaign=campaign).status == expected


def test_a_test_send_does_not_use_up_the_learners_day_cap(course):
    GuardrailPolicy.objects.filter(pk=GuardrailPolicy.load().pk).update(
        email_cap=10, email_cap_day=1, email_cap_week=0
    )
    campaign = CampaignFactory(name="Next course")
    learner = finisher(course, external_id="ann")
    SendFactory(learner=learner, status="sent", is_test=True, created_at=NOW - timedelta(hours=1))
    evaluate(now=NOW)
    assert Send.objects.get(campaign=campaign).status == "queued"
    SendFactory(learner=learner, status="sent", created_at=NOW - timedelta(hours=1))
    other = CampaignFactory(name="Another", moment__slug="milestone")
    evaluate(now=NOW)
    assert (Send.objects.get(campaign=other).rule) == Rule.CAP_DAY


def test_a_team_plan_yields_one_trigger_row_per_member():
    """Three members, one team plan at 95 %: three rows (a second join on the members made it
    nine, one per member per member)."""
    account = AccountFactory()
    members = [LearnerFactory(account=account) for _ in range(3)]
    SubscriptionFactory(account=account, learner=None, quota_used=95, quota_limit=100)
    campaign = CampaignFactory(trigger="usage_threshold", trigger_params={}, one_per_account=False)
    rows = [row for query in trigger_rows(campaign, now=NOW) for row in query]
    assert sorted(row["t_learner_id"] for row in rows) == sorted(m.pk for m in members)


@pytest.mark.parametrize(
    ("roles", "one_per_account", "expected"),
    [
        ([], True, ["admin"]),  # one per account: the admin first
        (["billing_owner"], True, ["billing"]),
        (["billing_owner", "member"], False, ["billing", "member-1", "member-2"]),
        (["member"], True, ["member-1"]),  # the oldest member
        ([], False, ["admin", "billing", "member-1", "member-2"]),
    ],
)
def test_account_triggers_reach_the_roles_the_campaign_names(roles, one_per_account, expected):
    """Seed 004: role-aware targeting, so end-users are not sent admin offers."""
    account = AccountFactory()
    for external_id, role in [
        ("member-1", "member"),
        ("admin", "admin"),
        ("member-2", "member"),
        ("billing", "billing_owner"),
    ]:
        LearnerFactory(account=account, external_id=external_id, role=role)
    SubscriptionFactory(account=account, learner=None, quota_used=95, quota_limit=100)
    campaign = CampaignFactory(
        trigger="usage_threshold",
        trigger_params={},
        target_roles=roles,
        one_per_account=one_per_account,
    )
    rows = [row for query in trigger_rows(campaign, now=NOW) for row in query]
    ids = dict(Learner.objects.values_list("id", "external_id"))
    assert sorted(ids[row["t_learner_id"]] for row in rows) == expected


@pytest.mark.parametrize(
    ("roles", "one_per_account", "expected"),
    [
        ([], True, ["admin", "solo"]),  # the account's admin; a learner on their own
        (["billing_owner"], True, ["billing"]),
        (["billing_owner", "member"], False, ["billing", "member-1", "member-2", "solo"]),
        (["member"], True, ["member-1", "solo"]),  # the oldest member
        ([], False, ["admin", "billing", "member-1", "member-2", "solo"]),
    ],
)
def test_usage_reported_events_reach_the_roles_the_campaign_names(roles, one_per_account, expected):
    """Issue 17 items 4 and 8: a member's ``usage_reported`` event is the account's usage and
    reaches the account's members of the campaign's roles — one of them by default — as a
    team plan's quota does; a learner with no account is reached if their role is named (a
    member reported their own usage: an admins-only campaign used to reach them)."""
    account = AccountFactory()
    for external_id, role in [
        ("member-1", "member"),
        ("admin", "admin"),
        ("member-2", "member"),
        ("billing", "billing_owner"),
    ]:
        LearnerFactory(account=account, external_id=external_id, role=role)
    solo = LearnerFactory(external_id="solo", role="member")
    usage = {"metric": "api_calls", "used": 95, "limit": 100}
    for who in (Learner.objects.get(external_id="member-2"), solo):
        EventFactory(
            learner=who,
            kind="usage_reported",
            occurred_at=NOW - timedelta(hours=1),
            properties=usage,
        )
    campaign = CampaignFactory(
        trigger="usage_threshold",
        trigger_params={},
        target_roles=roles,
        one_per_account=one_per_account,
    )
    rows = [row for query in trigger_rows(campaign, now=NOW) for row in query]
    ids = dict(Learner.objects.values_list("id", "external_id"))
    assert sorted(ids[row["t_learner_id"]] for row in rows) == expected


def test_a_teams_usage_events_make_one_send_to_its_admin():
    """Two members report the team at 95 %: one email, to the admin the campaign addresses,
    not one to each member who reported."""
    account = AccountFactory()
    admin = LearnerFactory(account=account, external_id="admin", role="admin")
    reporters = [
        LearnerFactory(account=account, external_id=f"m{n}", role="member") for n in range(2)
    ]
    for learner in (admin, *reporters):
        LearnerScoreFactory(learner=learner, lps=75.0)
    for learner in reporters:
        EventFactory(
            learner=learner,
            kind="usage_reported",
            occurred_at=NOW - timedelta(hours=1),
            properties={"metric": "api_calls", "used": 95, "limit": 100},
        )
    CampaignFactory(
        name="Quota", trigger="usage_threshold", target_roles=["admin", "billing_owner"]
    )

    evaluate(now=NOW)

    assert sends() == [("admin", "Quota", "queued", "")]
    assert Send.objects.get().reason == (
        "reported 95% of their api_calls limit used (band 80% or more); LPS 75"
    )
