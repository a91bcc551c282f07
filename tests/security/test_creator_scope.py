"""A course creator sees their own courses' campaigns, sends and figures, nowhere anyone else's:
the funnel page, the send list and its campaign filter, the widget demo (issue 18).

Ana and Ben are creators, each of one course. "Everyone: win-back" is a marketer's campaign
about no course: its sends about Ana's course are Ana's to see, those about Ben's are Ben's.
One send of Ben's campaign names Ana's course (the campaign was moved to Ben's course after it
sent): it is Ben's, and Ana never sees it or the name of Ben's campaign.
"""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from campaigns.models import Rule
from campaigns.roles import COURSE_CREATOR, MARKETER
from campaigns.widget import widget_token_read
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.learners import CourseFactory, EnrollmentFactory, LearnerFactory, UserFactory

pytestmark = pytest.mark.django_db

ANA, BEN, EVERYONE, BEN_DRAFT = (
    "Ana: next course",
    "Ben: next course",
    "Everyone: win-back",
    "Ben: draft",
)


def _user(role: str | None, **kwargs):
    user = UserFactory(is_staff=True, **kwargs)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world():
    ana, ben = _user(COURSE_CREATOR, username="ana"), _user(COURSE_CREATOR, username="ben")
    marketer = _user(MARKETER, username="mia")
    course_a, course_b = CourseFactory(creator=ana), CourseFactory(creator=ben)
    learner_a, learner_b = (
        LearnerFactory(external_id="ana-learner"),
        LearnerFactory(external_id="ben-learner"),
    )
    EnrollmentFactory(learner=learner_a, course=course_a)
    EnrollmentFactory(learner=learner_b, course=course_b)
    campaigns = {
        ANA: CampaignFactory(name=ANA, course=course_a),
        BEN: CampaignFactory(name=BEN, course=course_b),
        EVERYONE: CampaignFactory(name=EVERYONE, course=None),
        BEN_DRAFT: CampaignFactory(name=BEN_DRAFT, course=course_b, status="draft"),
    }
    holdout = {"rule": Rule.HOLDOUT, "status": "suppressed"}
    sends = {
        "ana_treated": SendFactory(campaign=campaigns[ANA], course=course_a, learner=learner_a),
        "ana_held": SendFactory(campaign=campaigns[ANA], course=course_a, **holdout),
        "ben_treated": SendFactory(campaign=campaigns[BEN], course=course_b, learner=learner_b),
        "ben_held": SendFactory(campaign=campaigns[BEN], course=course_b, **holdout),
        "ben_moved": SendFactory(campaign=campaigns[BEN], course=course_a),
        "everyone_a": SendFactory(campaign=campaigns[EVERYONE], course=course_a),
        "everyone_a_held": SendFactory(campaign=campaigns[EVERYONE], course=course_a, **holdout),
        "everyone_b": SendFactory(campaign=campaigns[EVERYONE], course=course_b),
        "everyone_b_held": SendFactory(campaign=campaigns[EVERYONE], course=course_b, **holdout),
        "everyone_none": SendFactory(campaign=campaigns[EVERYONE], course=None),
    }
    return {
        "ana": ana,
        "ben": ben,
        "marketer": marketer,
        "campaigns": campaigns,
        "sends": sends,
        "learner_a": learner_a,
        "learner_b": learner_b,
    }


FUNNEL = {
    "ana": [(ANA, 2), (EVERYONE, 2)],
    "ben": [(BEN, 3), (EVERYONE, 2)],
    "marketer": [(EVERYONE, 5), (BEN, 3), (ANA, 2)],
}
# Campaign: (treated, held out) — only campaigns with a holdout, by name.
INCREMENTAL = {
    "ana": [(ANA, 1, 1), (EVERYONE, 1, 1)],
    "ben": [(BEN, 2, 1), (EVERYONE, 1, 1)],
    "marketer": [(ANA, 1, 1), (BEN, 2, 1), (EVERYONE, 3, 2)],
}
FILTER = {
    "ana": [ANA, EVERYONE],
    "ben": [BEN, EVERYONE],
    "marketer": [ANA, BEN_DRAFT, BEN, EVERYONE],  # by priority, then name
}
SENDS = {
    "ana": {"ana_treated", "ana_held", "everyone_a", "everyone_a_held"},
    "ben": {"ben_treated", "ben_held", "ben_moved", "everyone_b", "everyone_b_held"},
}


@pytest.mark.parametrize("who", ["ana", "ben", "marketer"])
def test_the_funnel_counts_only_the_sends_the_user_sees(world, who):
    client = _login(world[who])
    response = client.get("/admin/campaigns/campaign/funnel/")
    assert response.status_code == 200
    rows = [(row["key"], row["eligible"]) for row in response.context["rows"]]
    assert rows == FUNNEL[who]
    incremental = [(i.campaign, i.treated, i.holdout) for i in response.context["incremental"]]
    assert incremental == INCREMENTAL[who]
    page = response.content.decode()
    for name in (ANA, BEN, EVERYONE):
        assert (name in page) == (name in dict(rows)), (who, name)
    # Every other dimension adds up to the same sends.
    total = sum(n for _, n in FUNNEL[who])
    for by in ("trigger", "moment", "segment", "band", "channel"):
        rows = client.get(f"/admin/campaigns/campaign/funnel/?by={by}").context["rows"]
        assert sum(row["eligible"] for row in rows) == total, (who, by)


@pytest.mark.parametrize("who", ["ana", "ben", "marketer"])
def test_the_send_lists_campaign_filter_names_only_the_users_campaigns(world, who):
    response = _login(world[who]).get("/admin/campaigns/send/")
    assert response.status_code == 200
    (campaign_filter,) = [
        spec for spec in response.context["cl"].filter_specs if spec.field_path == "campaign"
    ]
    assert [label for _, label in campaign_filter.lookup_choices] == FILTER[who]
    page = response.content.decode()
    for name in (ANA, BEN, BEN_DRAFT, EVERYONE):
        assert (name in page) == (name in FILTER[who]), (who, name)
    shown = {send.pk for send in response.context["cl"].result_list}
    sends = world["sends"]
    expected = SENDS.get(who, set(sends))
    assert shown == {sends[key].pk for key in expected}


def test_a_creator_filtering_by_another_creators_campaign_gets_no_send(world):
    ben_campaign = world["campaigns"][BEN]
    response = _login(world["ana"]).get(
        f"/admin/campaigns/send/?campaign__id__exact={ben_campaign.pk}"
    )
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert BEN not in response.content.decode()


def _no_token(response) -> None:
    body = response.content.decode()
    assert 'token: "' not in body
    assert "ana-learner" not in body
    assert "ben-learner" not in body


@pytest.mark.parametrize("learner", ["ana-learner", "ben-learner", ""])
def test_a_creator_mints_no_widget_token_for_any_learner(world, learner):
    """Ben's learner, and Ana's own too: the token reads the learner's whole widget (every
    campaign's card, every creator's courses on the path) and reports on their real sends."""
    response = _login(world["ana"]).get(f"/w/demo/?learner={learner}")
    assert response.status_code == 403
    _no_token(response)


def test_staff_without_a_role_mints_no_widget_token(world):
    response = _login(_user(None)).get("/w/demo/?learner=ben-learner")
    assert response.status_code == 403
    _no_token(response)


def test_anonymous_visitors_are_sent_to_sign_in(world, client):
    response = client.get("/w/demo/?learner=ben-learner")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("who", ["marketer", "superuser"])
def test_a_marketer_or_superuser_opens_the_demo_for_any_learner(world, who):
    user = _user(None, is_superuser=True) if who == "superuser" else world[who]
    client = _login(user)
    for learner in ("ana-learner", "ben-learner"):
        response = client.get(f"/w/demo/?learner={learner}")
        assert response.status_code == 200
        assert response.context["learner"].external_id == learner
        assert widget_token_read(response.context["token"]) == response.context["learner"].pk
    missing = client.get("/w/demo/?learner=nobody")
    assert missing.status_code == 404
    _no_token(missing)
