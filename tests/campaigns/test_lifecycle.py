"""A campaign's life: what activation needs, in words a marketer can act on."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group

from campaigns.approval import campaign_approve
from campaigns.lifecycle import (
    CampaignError,
    activation_problems,
    campaign_activate,
    campaign_pause,
    campaign_submit,
)
from campaigns.roles import COURSE_CREATOR
from tests.factories.campaigns import CampaignFactory, JourneyMomentFactory
from tests.factories.expansion import OfferFactory
from tests.factories.experiments import ExperimentFactory
from tests.factories.learners import CourseFactory, UserFactory
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory

pytestmark = pytest.mark.django_db


def test_activation_names_everything_missing_then_succeeds():
    creator = UserFactory()
    creator.groups.add(Group.objects.get(name=COURSE_CREATOR))
    campaign = CampaignFactory(
        status="draft",
        email_template=MessageTemplateFactory(name="Unsaved"),  # no version yet
        moment=JourneyMomentFactory(slug="support_open", offers_allowed=False),
        experiment=ExperimentFactory(status="draft", name="Card"),
        course=CourseFactory(title="SQL Basics", creator=creator),
        requires_creator_approval=True,
        trigger="renewal",
        trigger_params={"min_days": 90, "max_days": 60},
    )
    campaign.email_template.versions.all().delete()

    assert activation_problems(campaign) == [
        "template Unsaved has no saved version",
        "the moment 'Support ticket open' is kept offer-free",  # seeded by migration
        "an upsell or cross-sell campaign needs an offer",
        "its experiment 'Card' is Draft",
        "waits for the approval of SQL Basics's creator",
        "trigger_params: min_days must not exceed max_days",
    ]
    with pytest.raises(CampaignError) as refused:
        campaign_activate(campaign=campaign)
    assert len(refused.value.problems) == 6
    campaign.refresh_from_db()
    assert campaign.status == "draft"

    MessageTemplateVersionFactory(template=campaign.email_template)
    campaign.moment = JourneyMomentFactory(slug="renewal")
    campaign.offer = OfferFactory()
    campaign.experiment = None
    campaign.trigger_params = {}
    campaign.save()
    campaign_submit(campaign=campaign)
    assert campaign.status == "in_review"
    campaign_approve(campaign=campaign, user=creator)
    assert activation_problems(campaign) == []
    assert campaign_activate(campaign=campaign).status == "active"
    assert campaign_pause(campaign=campaign).status == "paused"
    with pytest.raises(CampaignError, match="only an active campaign can be paused"):
        campaign_pause(campaign=campaign)


def test_the_admin_action_reports_refusals_and_logs_successes(admin_client, admin_user):
    ready = CampaignFactory(name="Ready", status="draft", offer=OfferFactory())
    broken = CampaignFactory(name="Broken", status="draft")  # no offer
    response = admin_client.post(
        "/admin/campaigns/campaign/",
        {"action": "activate", "_selected_action": [ready.pk, broken.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Broken: an upsell or cross-sell campaign needs an offer" in page
    ready.refresh_from_db()
    broken.refresh_from_db()
    assert (ready.status, broken.status) == ("active", "draft")
    entry = LogEntry.objects.get(object_id=str(ready.pk))
    assert (entry.user, entry.change_message) == (admin_user, "Activated")
    assert not LogEntry.objects.filter(object_id=str(broken.pk)).exists()
