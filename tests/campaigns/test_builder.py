"""The campaign page as a flow: the trigger's parameters and the guardrail overrides as form
fields, the lifecycle as buttons, the reach estimate and the rendered message; a creator's
review (approve, or send back with a comment) on the same page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from campaigns.approval import SENT_BACK_LOG
from campaigns.models import Campaign, GuardrailPolicy, Rule, Send
from campaigns.reach import campaign_message_preview, reach_estimate
from campaigns.roles import COURSE_CREATOR, MARKETER
from learners.models import DirtyLearner, Enrollment
from templates.messages import template_snapshot
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import OfferFactory
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    LearnerScoreFactory,
    ModuleFactory,
    SegmentFactory,
    SegmentMembershipFactory,
    UserFactory,
)
from tests.factories.templates import MessageTemplateFactory
from tests.helpers import role_user

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_global_holdout():
    ExperimentSettingsFactory(global_holdout_percent=0)


@pytest.fixture
def marketer(client):
    client.force_login(role_user(MARKETER))
    return client


def _form_data(page) -> dict:
    """The change form's fields as the browser would post them (unchanged)."""
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        if isinstance(value, list):
            data[name] = value
            continue
        data[name] = value.pk if hasattr(value, "pk") else value
    data["target_roles"] = form["target_roles"].value()
    return data


def _change(client, campaign: Campaign, **changes):
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = _form_data(client.get(url))
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(url, data)


def test_the_chosen_triggers_parameters_are_form_fields_saved_as_overrides(marketer):
    campaign = CampaignFactory(trigger="assessment_high", trigger_params={"min_score": 90.0})
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    page = marketer.get(url)
    body = page.content.decode()
    assert 'name="trigger__assessment_high__min_score" value="90.0"' in body
    assert "assessment score, 0–100 (default 80.0)" in body
    assert 'name="trigger_params"' not in body  # no JSON box
    assert "2 · Trigger" in body
    assert "6 · Guardrails" in body

    response = _change(marketer, campaign, trigger__assessment_high__min_score="85")
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.trigger_params == {"min_score": 85.0}
    # Back to the default: nothing stored (a default changed in code reaches it).
    _change(marketer, campaign, trigger__assessment_high__min_score="80")
    campaign.refresh_from_db()
    assert campaign.trigger_params == {}


def test_target_roles_are_boxes_to_tick_saved_as_the_list(marketer):
    campaign = CampaignFactory(trigger="usage_threshold", target_roles=["admin"])
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    body = marketer.get(url).content.decode()
    assert body.count('type="checkbox" name="target_roles"') == 3
    assert 'name="target_roles" value="admin" id="id_target_roles_0" checked' in body
    assert 'name="target_roles" value="member"' in body

    response = _change(marketer, campaign, target_roles=["billing_owner", "admin"])
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.target_roles == ["admin", "billing_owner"]  # in the roles' order
    _change(marketer, campaign, target_roles=[])
    campaign.refresh_from_db()
    assert campaign.target_roles == []
    response = _change(marketer, campaign, target_roles=["owner"])
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["target_roles"] == [
        "Select a valid choice. owner is not one of the available choices."
    ]
    campaign.refresh_from_db()
    assert campaign.target_roles == []


def test_a_wrong_parameter_is_refused_on_its_field_and_nothing_is_saved(marketer):
    campaign = CampaignFactory(trigger="assessment_high", trigger_params={"min_score": 90.0})
    response = _change(marketer, campaign, trigger__assessment_high__min_score="140")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["trigger__assessment_high__min_score"] == [
        "Ensure this value is less than or equal to 100."
    ]
    campaign.refresh_from_db()
    assert campaign.trigger_params == {"min_score": 90.0}
    # A parameter the trigger requires, left empty, is named.
    entry = CampaignFactory(trigger="final_module")
    response = _change(marketer, entry, trigger="segment_entry")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["trigger__segment_entry__segment"] == [
        "required (id of the segment whose new members it finds)"
    ]
    entry.refresh_from_db()
    assert entry.trigger == "final_module"


def test_list_and_segment_parameters(marketer):
    segment = SegmentFactory(name="Trial users")
    campaign = CampaignFactory(trigger="usage_threshold")
    _change(
        marketer,
        campaign,
        trigger__usage_threshold__thresholds="80, 90,100",
        trigger__usage_threshold__percent="70",
    )
    campaign.refresh_from_db()
    assert campaign.trigger_params == {"percent": 70, "thresholds": [80, 90, 100]}
    response = _change(marketer, campaign, trigger__usage_threshold__thresholds="80, lots")
    assert response.context["adminform"].form.errors["trigger__usage_threshold__thresholds"] == [
        "whole numbers separated by commas, e.g. 80, 90, 100"
    ]
    _change(marketer, campaign, trigger="segment_entry", trigger__segment_entry__segment=segment.pk)
    campaign.refresh_from_db()
    assert (campaign.trigger, campaign.trigger_params) == ("segment_entry", {"segment": segment.pk})


def test_guardrail_overrides_are_fields_that_show_the_policy(marketer):
    GuardrailPolicy.objects.filter(pk=1).update(min_lps=40)
    campaign = CampaignFactory(guardrails={"email_cap": 1})
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    body = marketer.get(url).content.decode()
    assert 'placeholder="policy: 40"' in body
    assert "Empty: the guardrail policy's 40." in body  # the admin writes help as HTML
    assert 'name="guardrail__email_cap" value="1"' in body
    assert "Policy default (yes)" in body  # suppress at risk

    _change(
        marketer,
        campaign,
        guardrail__email_cap="",
        guardrail__min_lps="60",
        guardrail__suppress_at_risk="0",
    )
    campaign.refresh_from_db()
    assert campaign.guardrails == {"min_lps": 60, "suppress_at_risk": False}


def test_lifecycle_buttons_call_the_same_steps_and_log_them(marketer):
    campaign = CampaignFactory(status="draft", offer=OfferFactory())
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    body = marketer.get(url).content.decode()
    step = reverse("admin:campaigns_campaign_step", args=[campaign.pk, "activate"])
    assert f'action="{step}"' in body
    assert 'value="Pause"' not in body

    response = marketer.post(step, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["1 campaign(s) activated."]
    campaign.refresh_from_db()
    assert campaign.status == "active"
    assert (
        LogEntry.objects.filter(object_id=str(campaign.pk), change_message="Activated").count() == 1
    )
    body = marketer.get(url).content.decode()
    assert 'value="Pause"' in body
    assert 'value="Activate"' not in body
    marketer.post(reverse("admin:campaigns_campaign_step", args=[campaign.pk, "pause"]))
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    # A step that does not apply is refused with its reason, nothing changed.
    response = marketer.post(
        reverse("admin:campaigns_campaign_step", args=[campaign.pk, "submit"]), follow=True
    )
    assert "only a draft can be sent for review, not paused" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    assert (
        marketer.post(reverse("admin:campaigns_campaign_step", args=[campaign.pk, "x"])).status_code
        == 404
    )
    assert marketer.get(step).status_code == 405


@pytest.fixture
def completions():
    """Three learners who completed SQL Basics' final module 3 hours ago, one of them at
    risk (stopped by the guardrail), one a day ago (outside the 24 h window), one 9 days ago
    (outside the week); one already answered, one waiting for fresh scores."""
    course = CourseFactory(title="SQL Basics")
    final = ModuleFactory(course=course, position=1, is_final=True)

    def finisher(hours_ago: float, **score):
        learner = LearnerFactory(time_zone="Europe/London")
        EnrollmentFactory(learner=learner, course=course, enrolled_at=NOW - timedelta(days=60))
        LearnerScoreFactory(learner=learner, **{"lps": 82.0, "stage": "growth", **score})
        EventFactory(
            learner=learner,
            kind="module_completed",
            course=course,
            module=final,
            occurred_at=NOW - timedelta(hours=hours_ago),
        )
        return learner

    fresh = [finisher(3), finisher(4), finisher(5, stage="at_risk")]
    answered, waiting = finisher(6), finisher(7)
    finisher(30)
    finisher(24 * 9)
    DirtyLearner.objects.all().delete()
    DirtyLearner.objects.create(learner=waiting)
    campaign = CampaignFactory(name="Next course", offer=OfferFactory(), status="draft")
    SendFactory(campaign=campaign, learner=answered, occurrence_key=_key(answered), status="sent")
    return campaign, fresh


def _key(learner) -> str:
    from learners.models import Event  # noqa: PLC0415

    return f"event:{Event.objects.get(learner=learner).pk}"


def test_the_reach_estimate_counts_each_step_and_writes_nothing(completions):
    campaign, fresh = completions
    sends = Send.objects.count()

    reach = reach_estimate(campaign=campaign, now=NOW)

    assert (
        reach.last_7_days,
        reach.in_window,
        reach.answered,
        reach.waiting,
        reach.outside_audience,
        reach.candidates,
        reach.queued,
    ) == (6, 5, 1, 1, 0, 3, 2)
    assert [(rule, n) for rule, _, n in reach.stopped] == [(Rule.AT_RISK, 1)]
    assert reach.explanation == "2 of 3 would be queued now."
    assert sorted(row["learner"] for row in reach.sample) == sorted(
        learner.external_id for learner in fresh
    )
    assert Send.objects.count() == sends
    # An audience leaves out who is not in it.
    segment = SegmentFactory()
    SegmentMembershipFactory(segment=segment, learner=fresh[0])
    campaign.segment = segment
    campaign.save()
    reach = reach_estimate(campaign=campaign, now=NOW)
    assert (reach.outside_audience, reach.candidates, reach.queued) == (2, 1, 1)


def test_nobody_to_reach_says_why():
    campaign = CampaignFactory(status="draft")
    reach = reach_estimate(campaign=campaign, now=NOW)
    assert (reach.last_7_days, reach.queued) == (0, 0)
    assert (
        reach.explanation
        == "Its trigger has not fired in the last 7 days: nobody would get it now."
    )


def test_the_reach_page_and_its_fragment(marketer, completions):
    campaign, _ = completions
    url = reverse("admin:campaigns_campaign_preview", args=[campaign.pk])
    body = marketer.get(url).content.decode()
    assert "Trigger occurrences, last 7 days" in body
    assert "The message, for a learner who would get it" in body
    fragment = marketer.get(url + "?fragment=1").content.decode()
    assert fragment.lstrip().startswith('<div class="reach" id="reach-figures">')
    assert "<html" not in fragment


def test_the_message_preview_uses_the_campaigns_offer_and_the_learners_reason():
    OfferFactory(name="An offer first by name")  # what a template preview would pick
    template = MessageTemplateFactory(
        html_body="<p>Hi {{ learner.name }}: {{ offer.name }}. {{ reason }}</p>"
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'
    )
    template_snapshot(template=template)
    campaign = CampaignFactory(offer=OfferFactory(name="Spring bundle"), email_template=template)
    learner = LearnerFactory(name="Ann Lee")
    SendFactory(
        campaign=campaign,
        learner=learner,
        reason="completed the final module of SQL Basics; LPS 82",
        created_at=NOW - timedelta(days=1),
    )
    preview = campaign_message_preview(campaign=campaign, now=NOW)
    assert preview.learner == learner
    assert preview.reason == "You finished SQL Basics yesterday."
    assert preview.email is not None
    assert preview.email_error == ""
    assert "<p>Hi Ann Lee: Spring bundle. You finished SQL Basics yesterday.</p>" in (
        preview.email.html
    )


def test_with_no_send_yet_the_preview_greets_the_courses_furthest_learner():
    template = MessageTemplateFactory(html_body="<p>Hi {{ learner.name }}</p>")
    template_snapshot(template=template)
    course = CourseFactory()
    campaign = CampaignFactory(course=course, email_template=template)
    LearnerFactory(name="First by id, not enrolled")
    starter, halfway, graduate = (LearnerFactory(name=name) for name in ("S", "H", "G"))
    EnrollmentFactory(learner=starter, course=course, progress=5)
    EnrollmentFactory(learner=halfway, course=course, progress=50)
    EnrollmentFactory(learner=graduate, course=course, progress=100, completed_at=NOW)
    assert campaign_message_preview(campaign=campaign, now=NOW).learner == graduate
    Enrollment.objects.filter(learner=graduate).delete()
    assert campaign_message_preview(campaign=campaign, now=NOW).learner == halfway
    # A campaign without a course: the first of its audience, as before.
    other = CampaignFactory(course=None, email_template=template)
    assert campaign_message_preview(campaign=other, now=NOW).learner.name == (
        "First by id, not enrolled"
    )


@pytest.fixture
def review():
    creator = role_user(COURSE_CREATOR)
    campaign = CampaignFactory(
        status="in_review", requires_creator_approval=True, course=CourseFactory(creator=creator)
    )
    return creator, campaign


def test_a_creator_reviews_on_the_campaign_page_and_sends_back_with_a_comment(client, review):
    creator, campaign = review
    client.force_login(creator)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    body = client.get(url).content.decode()
    assert 'id="review-panel"' in body
    assert 'id="message-preview"' in body
    assert 'id="review-offer"' in body
    assert 'value="Approve"' in body
    assert 'name="trigger__' not in body  # read-only: no form fields
    # What she reviews comes before the settings.
    assert body.index('id="review-panel"') < body.index('id="message-preview"')
    assert body.index('id="message-preview"') < body.index("1 · Moment")
    assert "Trigger parameters" in body
    # No comment: refused, still in review.
    back = reverse("admin:campaigns_campaign_step", args=[campaign.pk, "send_back"])
    response = client.post(back, {"comment": "  "}, follow=True)
    assert "say what should change: the comment is required" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "in_review"
    client.post(back, {"comment": "Say 30% off, not 'a discount'."})
    campaign.refresh_from_db()
    assert campaign.status == "draft"
    entry = LogEntry.objects.get(
        object_id=str(campaign.pk), change_message__startswith=SENT_BACK_LOG
    )
    assert entry.change_message == "Sent back: Say 30% off, not 'a discount'."
    # The marketer reads it on the page.
    client.force_login(role_user(MARKETER))
    body = client.get(url).content.decode()
    assert "Sent back by" in body
    assert "Say 30% off, not &#x27;a discount&#x27;." in body


def test_a_creator_cannot_press_a_marketers_steps_or_review_anothers(client, review):
    creator, campaign = review
    client.force_login(creator)
    activate = reverse("admin:campaigns_campaign_step", args=[campaign.pk, "activate"])
    assert client.post(activate).status_code == 403
    theirs = CampaignFactory(status="in_review", course=CourseFactory(creator=UserFactory()))
    approve = reverse("admin:campaigns_campaign_step", args=[theirs.pk, "approve"])
    assert client.post(approve).status_code == 404  # not even visible
    theirs.refresh_from_db()
    campaign.refresh_from_db()
    assert (theirs.status, campaign.status, theirs.approved_at) == ("in_review", "in_review", None)


@pytest.mark.django_db(transaction=True)
def test_the_approve_and_send_back_buttons_work_outside_a_test_transaction(client):
    # As in production: each request in autocommit, the steps open their own transaction
    # (select_for_update needs one; a test's wrapping transaction had hidden a lost one).
    creator = role_user(COURSE_CREATOR)
    campaign = CampaignFactory(
        status="in_review", requires_creator_approval=True, course=CourseFactory(creator=creator)
    )
    client.force_login(creator)
    approve = reverse("admin:campaigns_campaign_step", args=[campaign.pk, "approve"])
    assert client.post(approve).status_code == 302
    campaign.refresh_from_db()
    assert campaign.approved_by == creator
    back = reverse("admin:campaigns_campaign_step", args=[campaign.pk, "send_back"])
    assert client.post(back, {"comment": "Name the price."}).status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "draft"
