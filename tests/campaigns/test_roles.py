"""Roles: marketers run campaigns; course creators see and approve only their own courses'."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.test import Client

from campaigns.models import Campaign
from campaigns.roles import COURSE_CREATOR, MARKETER
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.learners import CourseFactory, UserFactory

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people():
    marketer = UserFactory(is_staff=True)
    marketer.groups.add(Group.objects.get(name=MARKETER))
    creator = UserFactory(is_staff=True)
    creator.groups.add(Group.objects.get(name=COURSE_CREATOR))
    other = UserFactory(is_staff=True)
    other.groups.add(Group.objects.get(name=COURSE_CREATOR))
    mine = CampaignFactory(
        name="Mine",
        course=CourseFactory(creator=creator),
        status="draft",
        requires_creator_approval=True,
    )
    theirs = CampaignFactory(name="Theirs", course=CourseFactory(creator=other), status="draft")
    mine.send = SendFactory(campaign=mine, course=mine.course)
    theirs.send = SendFactory(campaign=theirs, course=theirs.course)
    return marketer, creator, mine, theirs


def test_the_project_creates_both_groups_with_their_permissions():
    creator = set(
        Group.objects.get(name=COURSE_CREATOR).permissions.values_list("codename", flat=True)
    )
    assert creator == {"view_campaign", "approve_campaign", "view_send"}
    marketer = set(Group.objects.get(name=MARKETER).permissions.values_list("codename", flat=True))
    assert {"add_campaign", "change_campaign", "add_segment", "view_send"} <= marketer
    assert "approve_campaign" not in marketer
    assert "delete_learner" not in marketer


def test_a_creator_sees_only_their_own_courses_campaigns_and_sends(people):
    marketer, creator, mine, theirs = people
    page = login(creator).get("/admin/campaigns/campaign/").content.decode()
    assert "Mine" in page
    assert "Theirs" not in page
    assert login(creator).get(f"/admin/campaigns/campaign/{theirs.pk}/change/").status_code == 302
    sends = login(creator).get("/admin/campaigns/send/").content.decode()
    assert f"/admin/campaigns/send/{mine.send.pk}/change/" in sends
    assert f"/admin/campaigns/send/{theirs.send.pk}/change/" not in sends
    assert login(creator).get("/admin/learners/learner/").status_code == 403
    everything = login(marketer).get("/admin/campaigns/campaign/").content.decode()
    assert "Mine" in everything
    assert "Theirs" in everything


def test_only_the_courses_creator_approves_and_it_is_logged(people):
    marketer, creator, mine, theirs = people
    action = {"action": "approve", "_selected_action": [mine.pk]}
    # A marketer has no approve action at all.
    login(marketer).post("/admin/campaigns/campaign/", action)
    mine.refresh_from_db()
    assert mine.approved_by is None
    login(creator).post("/admin/campaigns/campaign/", action)
    mine.refresh_from_db()
    assert mine.approved_by == creator
    version = mine.email_template.versions.get()
    assert mine.approved_email_version == version
    message = LogEntry.objects.filter(user=creator, object_id=str(mine.pk)).get().change_message
    assert message.startswith(f"Approved: email template {version}; in-app template none\n")
    # Another creator's campaign is not even in the creator's list: nothing happens.
    login(creator).post(
        "/admin/campaigns/campaign/", {"action": "approve", "_selected_action": [theirs.pk]}
    )
    assert Campaign.objects.get(pk=theirs.pk).approved_by is None
