"""A creator's approval is pinned: the versions it names are what is sent, and any change to
what was reviewed sends the campaign back to review (issue 17, item 6)."""

import hashlib
import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.test import Client

from campaigns.approval import (
    COVERED_SINCE_V2,
    TERMS_MARK,
    UNKNOWN,
    approval_covers_everything,
    approval_drift,
    approval_fingerprint,
    approval_terms,
    campaign_approve,
    campaign_versions,
    campaigns_back_to_review,
)
from campaigns.lifecycle import CampaignError, activation_problems, campaign_activate
from campaigns.models import Campaign
from campaigns.roles import COURSE_CREATOR, MARKETER
from tests.factories.campaigns import CampaignFactory, JourneyMomentFactory
from tests.factories.expansion import OfferFactory, ProductFactory
from tests.factories.learners import CourseFactory, UserFactory
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory

pytestmark = pytest.mark.django_db

NO_COURSE = "needs a course whose creator approves it, or switch off Requires creator approval"
APPROVAL_FIELDS = (
    "status",
    "approved_by",
    "approved_at",
    "approved_email_version",
    "approved_in_app_version",
    "approved_fingerprint",
    "updated_at",
)


def creator_user(username: str):
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=COURSE_CREATOR))
    return user


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def state(campaign: Campaign) -> tuple:
    """The approval and status as stored (what a refused step must leave alone)."""
    return Campaign.objects.filter(pk=campaign.pk).values_list(*APPROVAL_FIELDS).get()


@pytest.fixture
def carl():
    return creator_user("carl")


@pytest.fixture
def renewal(carl):
    """An in-review renewal campaign on Carl's course, its email template at v2."""
    template = MessageTemplateFactory(name="Renewal email")
    MessageTemplateVersionFactory(template=template, number=1)
    MessageTemplateVersionFactory(template=template, number=2)
    offer = OfferFactory(
        name="Annual plan",
        product=ProductFactory(name="Pro annual", price=Decimal("99.00"), currency="USD"),
    )
    return CampaignFactory(
        name="Renewal right-sizing",
        moment=JourneyMomentFactory(slug="renewal"),
        trigger="renewal",
        email_template=template,
        offer=offer,
        course=CourseFactory(title="SQL Basics", creator=carl),
        status="in_review",
        requires_creator_approval=True,
    )


def test_approval_pins_the_newest_versions_and_fingerprints_what_was_reviewed(renewal, carl):
    v2 = renewal.email_template.versions.get(number=2)

    campaign_approve(campaign=renewal, user=carl)

    renewal.refresh_from_db()
    assert renewal.approved_by == carl
    assert renewal.approved_email_version == v2
    assert renewal.approved_in_app_version is None
    assert renewal.approved_fingerprint == approval_fingerprint(campaign=renewal)
    assert len(renewal.approved_fingerprint) == 64
    assert int(renewal.approved_fingerprint, 16) >= 0  # hex
    assert approval_drift(campaign=renewal) == []
    assert activation_problems(renewal) == []
    entry = LogEntry.objects.get(object_id=str(renewal.pk))
    assert entry.user == carl
    assert entry.change_message.startswith(
        "Approved: email template Renewal email v2; in-app template none\nReviewed terms: {"
    )
    assert '"offer.price": "99.00 USD"' in entry.change_message
    assert campaign_activate(campaign=renewal).status == "active"


def test_campaign_versions_sends_the_approved_version_while_a_newer_one_exists(renewal, carl):
    v2 = renewal.email_template.versions.get(number=2)
    assert campaign_versions(campaign=renewal) == (None, None)  # nothing approved yet
    assert campaign_versions(campaign=renewal, dry_run=True) == (v2.pk, None)
    campaign_approve(campaign=renewal, user=carl)
    v3 = MessageTemplateVersionFactory(template=renewal.email_template, number=3)

    renewal.refresh_from_db()
    assert campaign_versions(campaign=renewal) == (v2.pk, None)
    # The preview shows what an approval now would pin.
    assert campaign_versions(campaign=renewal, dry_run=True) == (v3.pk, None)
    # Without creator approval, the newest version is sent.
    unreviewed = CampaignFactory(email_template=renewal.email_template)
    assert campaign_versions(campaign=unreviewed) == (v3.pk, None)
    card = MessageTemplateFactory(channel="in_app", name="Card")
    card_v1 = MessageTemplateVersionFactory(template=card, number=1, channel="in_app")
    in_app = CampaignFactory(email_template=None, in_app_template=card)
    assert campaign_versions(campaign=in_app) == (None, card_v1.pk)


def test_a_new_template_version_sends_an_active_campaign_back_to_review(renewal, carl):
    campaign_approve(campaign=renewal, user=carl)
    campaign_activate(campaign=renewal)
    # Two campaigns that must not move: one approved and unchanged, one without approval.
    steady = CampaignFactory(
        name="Steady",
        offer=OfferFactory(),
        course=renewal.course,
        requires_creator_approval=True,
        status="paused",
    )
    campaign_approve(campaign=steady, user=carl)
    free = CampaignFactory(name="Free", offer=OfferFactory(), email_template=renewal.email_template)
    before = {c.name: state(c) for c in (steady, free)}

    MessageTemplateVersionFactory(template=renewal.email_template, number=3)

    renewal.refresh_from_db()
    drift = ["its email template has a newer version (v3; v2 was approved)"]
    assert approval_drift(campaign=renewal) == drift
    assert activation_problems(renewal) == [f"changed since it was approved: {drift[0]}"]
    stale = Campaign.objects.get(pk=renewal.pk)
    assert campaigns_back_to_review() == 1
    assert campaign_versions(campaign=stale) == (None, None)  # read from the row

    renewal.refresh_from_db()
    assert (renewal.status, renewal.approved_by, renewal.approved_at) == ("in_review", None, None)
    assert renewal.approved_email_version.number == 2  # what was last approved, kept
    assert approval_drift(campaign=renewal) == drift  # why, for its change page
    assert campaign_versions(campaign=renewal) == (None, None)
    assert activation_problems(renewal) == ["waits for the approval of SQL Basics's creator"]
    assert {c.name: state(c) for c in (steady, free)} == before
    assert campaigns_back_to_review() == 0  # idempotent

    campaign_approve(campaign=renewal, user=carl)
    renewal.refresh_from_db()
    assert renewal.approved_email_version.number == 3
    assert approval_drift(campaign=renewal) == []


def test_an_offer_price_change_is_drift_and_blocks_activation(renewal, carl):
    campaign_approve(campaign=renewal, user=carl)
    product = renewal.offer.product
    product.price = Decimal("120.00")
    product.save()

    renewal.refresh_from_db()
    drift = ["its offer's price changed (99.00 USD → 120.00 USD)"]
    assert approval_drift(campaign=renewal) == drift
    assert approval_fingerprint(campaign=renewal) != renewal.approved_fingerprint
    before = state(renewal)
    with pytest.raises(CampaignError) as refused:
        campaign_activate(campaign=renewal)
    assert refused.value.problems == [f"changed since it was approved: {drift[0]}"]
    assert state(renewal) == before

    offer = renewal.offer
    offer.positioning = "Save two months."
    offer.is_active = False
    offer.save()
    renewal.refresh_from_db()
    assert approval_drift(campaign=renewal) == [
        drift[0],
        "its offer's positioning changed",
        "its offer was deactivated",
    ]


def test_an_active_drifted_campaign_with_an_edited_offer_goes_back_to_review(renewal, carl):
    campaign_approve(campaign=renewal, user=carl)
    campaign_activate(campaign=renewal)
    offer = renewal.offer
    offer.valid_hours = 24
    offer.save()

    assert campaigns_back_to_review() == 1
    renewal.refresh_from_db()
    assert renewal.status == "in_review"
    assert approval_drift(campaign=renewal) == ["its offer's validity (hours) changed (48 → 24)"]


def test_a_campaign_that_needs_approval_without_a_course_cannot_be_activated(
    admin_client, admin_user
):
    """The demo's "Renewal right-sizing": activated from the list, it sent 8 emails."""
    campaign = CampaignFactory(
        name="Renewal right-sizing",
        offer=OfferFactory(),
        status="draft",
        requires_creator_approval=True,
    )
    assert activation_problems(campaign) == [NO_COURSE]
    before = state(campaign)

    response = admin_client.post(
        "/admin/campaigns/campaign/",
        {"action": "activate", "_selected_action": [campaign.pk]},
        follow=True,
    )

    page = response.content.decode()
    assert f"Renewal right-sizing: {NO_COURSE}" in page
    assert "activated." not in page
    assert state(campaign) == before
    assert not LogEntry.objects.filter(object_id=str(campaign.pk)).exists()
    # Not even a superuser can approve it: there is no creator to.
    with pytest.raises(CampaignError, match="has no course whose creator could approve it"):
        campaign_approve(campaign=campaign, user=admin_user)
    assert state(campaign) == before

    campaign.requires_creator_approval = False
    campaign.save()
    assert activation_problems(campaign) == []


def test_an_active_campaign_that_needs_approval_and_has_none_goes_back_to_review():
    """One already active before this rule (the demo's, after its 8 emails) stops sending."""
    stray = CampaignFactory(offer=OfferFactory(), status="active", requires_creator_approval=True)
    orphan = CampaignFactory(
        offer=OfferFactory(),
        course=CourseFactory(title="No one's", creator=None),
        status="draft",
        requires_creator_approval=True,
    )
    assert activation_problems(orphan) == [
        "its course No one's has no creator to approve it: set the course's creator, or switch "
        "off Requires creator approval"
    ]
    assert campaigns_back_to_review() == 1
    stray.refresh_from_db()
    assert stray.status == "in_review"
    assert state(orphan)[0] == "draft"


def test_a_creator_approves_only_their_own_courses_campaign(renewal, carl):
    dana = creator_user("dana")
    marketer = UserFactory(username="mia", is_staff=True)
    marketer.groups.add(Group.objects.get(name=MARKETER))
    before = state(renewal)

    for stranger in (dana, marketer):
        with pytest.raises(CampaignError) as refused:
            campaign_approve(campaign=renewal, user=stranger)
        assert refused.value.problems == [
            "only the creator of the campaign's course can approve it"
        ]
    assert state(renewal) == before
    assert not LogEntry.objects.filter(object_id=str(renewal.pk)).exists()

    # In the admin, Carl's campaign is not even in Dana's list: her approve action does nothing.
    login(dana).post(
        "/admin/campaigns/campaign/", {"action": "approve", "_selected_action": [renewal.pk]}
    )
    assert state(renewal) == before

    campaign_approve(campaign=renewal, user=carl)
    assert Campaign.objects.get(pk=renewal.pk).approved_by == carl


def test_saving_an_approved_campaigns_reviewed_fields_in_the_admin_sends_it_back(
    renewal, carl, admin_client, admin_user
):
    campaign_approve(campaign=renewal, user=carl)
    campaign_activate(campaign=renewal)
    page = admin_client.get(f"/admin/campaigns/campaign/{renewal.pk}/change/").content.decode()
    assert "Approved by carl on " in page
    assert "email template Renewal email v2; in-app template none." in page

    form = {
        "name": renewal.name,
        "description": "",
        "moment": renewal.moment_id,
        "trigger": "renewal",
        "trigger_params": "{}",
        "send_within_hours": 24,
        "segment": "",
        "course": renewal.course_id,
        "target_roles": [],
        "one_per_account": "on",
        "purpose": renewal.purpose,
        "offer": renewal.offer_id,
        "category": renewal.category,
        "email_template": renewal.email_template_id,
        "in_app_template": "",
        "experiment": "",
        "priority": 150,
        "reentry": renewal.reentry,
        "reentry_days": renewal.reentry_days,
        "guardrails": "{}",
        "requires_creator_approval": "on",
        "_save": "Save",
    }
    response = admin_client.post(
        f"/admin/campaigns/campaign/{renewal.pk}/change/", form, follow=True
    )

    page = response.content.decode()
    assert (
        "Renewal right-sizing changed since it was approved (its priority changed (100 → 150)): "
        "its approval is withdrawn and it waits for SQL Basics&#x27;s creator to approve it again."
    ) in page
    renewal.refresh_from_db()
    assert (renewal.status, renewal.approved_at, renewal.priority) == ("in_review", None, 150)
    assert LogEntry.objects.filter(
        user=admin_user, change_message="Back to review: its priority changed (100 → 150)"
    ).exists()
    page = admin_client.get(f"/admin/campaigns/campaign/{renewal.pk}/change/").content.decode()
    assert "Withdrawn. Last approved by carl on " in page
    assert "its priority changed (100 → 150)" in page

    # Saving an unapproved campaign, or one whose reviewed fields did not change, moves nothing.
    before = state(renewal)
    admin_client.post(f"/admin/campaigns/campaign/{renewal.pk}/change/", form)
    assert state(renewal)[:6] == before[:6]
    assert (
        not LogEntry.objects.filter(change_message__startswith="Back to review")
        .exclude(change_message="Back to review: its priority changed (100 → 150)")
        .exists()
    )


@pytest.mark.parametrize(
    ("change", "drift"),
    [
        ({"moment": "milestone"}, "its moment changed"),
        ({"reentry": "once"}, "its re-entry rule changed (every → once)"),
        ({"reentry_days": 7}, "its re-entry cool-down (days) changed (30 → 7)"),
        ({"premium_upsell": True}, "its premium-upsell setting changed (False → True)"),
    ],
)
def test_the_moment_and_re_entry_are_reviewed_too(renewal, carl, change, drift):
    """Issue 17 item 6, "any change returns the campaign to review": moving the campaign to
    another moment or letting it reach a learner again was no drift at all."""
    campaign_approve(campaign=renewal, user=carl)
    campaign_activate(campaign=renewal)
    entry = LogEntry.objects.get(object_id=str(renewal.pk))
    assert '"moment": ' in entry.change_message
    assert '"reentry": "every"' in entry.change_message
    if "moment" in change:
        change = {"moment": JourneyMomentFactory(slug=change["moment"])}
    Campaign.objects.filter(pk=renewal.pk).update(**change)

    renewal.refresh_from_db()
    assert approval_drift(campaign=renewal) == [drift]
    assert activation_problems(renewal) == [f"changed since it was approved: {drift}"]
    assert campaigns_back_to_review() == 1
    renewal.refresh_from_db()
    assert (renewal.status, renewal.approved_at) == ("in_review", None)
    assert approval_drift(campaign=renewal) == [drift]


def _as_a_first_version_approval(campaign: Campaign) -> None:
    """Rewrite the campaign's approval as approvals were given before the moment, re-entry
    and premium-upsell setting were reviewed: fingerprint and logged terms without them."""
    terms = {
        k: v for k, v in approval_terms(campaign=campaign).items() if k not in COVERED_SINCE_V2
    }
    canonical = json.dumps(terms, sort_keys=True, separators=(",", ":"))
    Campaign.objects.filter(pk=campaign.pk).update(
        approved_fingerprint=hashlib.sha256(canonical.encode()).hexdigest()
    )
    entry = LogEntry.objects.get(object_id=str(campaign.pk))
    head = entry.change_message.rpartition(TERMS_MARK)[0]
    entry.change_message = f"{head}{TERMS_MARK}{json.dumps(terms, sort_keys=True)}"
    entry.save()
    campaign.refresh_from_db()


def test_an_approval_given_before_the_moment_was_reviewed_holds_on_what_it_covered(renewal, carl):
    """Approvals given before this change are compared on what they covered: they still
    hold (no campaign went back to review on the upgrade), a change to what they covered
    withdraws them as before, and approving again covers the moment and re-entry too."""
    campaign_approve(campaign=renewal, user=carl)
    campaign_activate(campaign=renewal)
    _as_a_first_version_approval(renewal)

    assert approval_drift(campaign=renewal) == []
    assert activation_problems(renewal) == []
    assert approval_covers_everything(campaign=renewal) is False
    assert campaigns_back_to_review() == 0
    # Not covered by that approval: no drift.
    Campaign.objects.filter(pk=renewal.pk).update(reentry="once")
    renewal.refresh_from_db()
    assert approval_drift(campaign=renewal) == []
    assert campaigns_back_to_review() == 0
    # Covered: drift, named, and nothing about the moment or re-entry.
    Campaign.objects.filter(pk=renewal.pk).update(priority=5)
    renewal.refresh_from_db()
    assert approval_drift(campaign=renewal) == ["its priority changed (100 → 5)"]
    assert campaigns_back_to_review() == 1

    campaign_approve(campaign=renewal, user=carl)
    renewal.refresh_from_db()
    assert approval_covers_everything(campaign=renewal) is True
    assert approval_drift(campaign=renewal) == []
    Campaign.objects.filter(pk=renewal.pk).update(reentry="every")
    renewal.refresh_from_db()
    assert approval_drift(campaign=renewal) == ["its re-entry rule changed (once → every)"]


def test_a_first_version_approval_holds_by_its_fingerprint_alone(renewal, carl):
    """Its history entry gone (the terms it reviewed unknown), a first-version approval is
    still recognised by its fingerprint: it holds until something it covered changes."""
    campaign_approve(campaign=renewal, user=carl)
    _as_a_first_version_approval(renewal)
    LogEntry.objects.filter(object_id=str(renewal.pk)).delete()

    assert approval_drift(campaign=renewal) == []
    assert approval_covers_everything(campaign=renewal) is False
    Campaign.objects.filter(pk=renewal.pk).update(priority=5)
    renewal.refresh_from_db()
    assert approval_drift(campaign=renewal) == [UNKNOWN]
