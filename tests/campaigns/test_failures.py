"""Delivery failures a marketer sees and recovers from in the admin: the counts on the campaign
list and page, the warning on a campaign that paused itself, "Retry failed sends" and "Resume"
(and who may use them), the funnel that accounts for every send, and the home page's
"Needs attention" box."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.failures import (
    campaign_resume,
    needs_attention,
    retryable_failed,
    sends_retry_failed,
)
from campaigns.funnel import funnel
from campaigns.lifecycle import CampaignError
from campaigns.models import Campaign, MailCircuit, Send, SendEvent, SendStatus
from campaigns.roles import COURSE_CREATOR, MARKETER
from tests.factories.campaigns import (
    CampaignFactory,
    DispatchLeaseFactory,
    MailCircuitFactory,
    SendFactory,
)
from tests.factories.expansion import OfferFactory, OrderFactory
from tests.factories.learners import CourseFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
UNKNOWN = (
    "outcome unknown: the worker was lost while handing it to the mail server; "
    "not retried, so that it cannot arrive twice"
)
REASON = "paused after 10 sends in a row failed: template: unknown variable 'offer.nmae'"
ESCAPED_REASON = REASON.replace("'", "&#x27;")
CHANGELIST = "/admin/campaigns/campaign/"
# The campaign list: session, user, the user's and the groups' permissions, the moment
# filter's choices, the result count and the full count, and the rows with all their counts.
QUERIES_PER_LIST = 8


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _role(name: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def marketer():
    return _role(MARKETER)


@pytest.fixture
def creator():
    return _role(COURSE_CREATOR)


def paused(**kwargs) -> Campaign:
    """A campaign that paused itself after 10 failures (with an offer: it can be resumed)."""
    fields = {
        "status": "paused",
        "paused_reason": REASON,
        "paused_at": NOW,
        "failure_streak": 10,
        "failure_reason": "template: unknown variable 'offer.nmae'",
        **kwargs,
    }
    if "offer" not in fields:
        fields["offer"] = OfferFactory()
    return CampaignFactory(**fields)


def with_sends(campaign: Campaign, statuses: dict[str, int]) -> Campaign:
    for status, n in statuses.items():
        for _ in range(n):
            SendFactory(campaign=campaign, status=status)
    return campaign


# One of each status: sent onwards are sent, delivered, opened, clicked, converted, dismissed.
EVERY_STATUS = {status: 1 for status in SendStatus.values}


# --- the campaign list ------------------------------------------------------------------------


def _list_queries(client: Client) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(CHANGELIST).status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def test_the_list_counts_sends_by_status_in_one_query_for_the_whole_page(
    marketer, django_assert_max_num_queries
):
    """3 or 10 campaigns, each with sends in every status: the same number of queries (the
    counts are one GROUP BY, not a query per row)."""
    client = login(marketer)
    for _ in range(3):
        with_sends(CampaignFactory(), EVERY_STATUS)
    three = _list_queries(client)
    for _ in range(7):
        with_sends(CampaignFactory(), EVERY_STATUS)
    with django_assert_max_num_queries(len(three)):
        response = client.get(CHANGELIST)
    assert len(_list_queries(client)) == len(three) == QUERIES_PER_LIST
    counted = [sql for sql in three if 'FROM "campaigns_send"' in sql]
    assert len(counted) == 1  # the page's rows and all their counts, together
    assert counted[0].count("COUNT(*)") == 5  # sent, failed, queued, sending, suppressed
    # The result counts count campaigns alone, without the sends.
    assert [sql for sql in three if sql.startswith("SELECT COUNT(*)")] == [
        'SELECT COUNT(*) AS "__count" FROM "campaigns_campaign"'
    ] * 2

    rows = response.context["cl"].result_list
    assert len(rows) == 10
    assert {(c.n_sent, c.n_failed, c.n_queued, c.n_suppressed, c.n_sending) for c in rows} == {
        (6, 1, 1, 1, 1)
    }


def test_the_list_counts_are_exact_and_link_to_the_sends_they_count(
    marketer, django_assert_max_num_queries
):
    campaign = with_sends(
        CampaignFactory(name="Graduates"),
        {
            "queued": 2,
            "sending": 1,
            "sent": 1,
            "delivered": 1,
            "opened": 1,
            "clicked": 1,
            "converted": 1,
            "dismissed": 1,
            "failed": 3,
            "suppressed": 4,
        },
    )
    quiet = CampaignFactory(name="Quiet")
    other = with_sends(CampaignFactory(name="Other"), {"failed": 5})
    client = login(marketer)
    with django_assert_max_num_queries(12):
        response = client.get(CHANGELIST)
    body = response.content.decode()
    counts = {
        c.name: (c.n_sent, c.n_failed, c.n_queued, c.n_suppressed)
        for c in response.context["cl"].result_list
    }
    assert counts == {"Graduates": (6, 3, 2, 4), "Quiet": (0, 0, 0, 0), "Other": (0, 5, 0, 0)}

    sends = reverse("admin:campaigns_send_changelist")
    sent_url = (
        f"{sends}?campaign__id__exact={campaign.pk}"
        "&amp;status__in=sent%2Cdelivered%2Copened%2Cclicked%2Cconverted%2Cdismissed"
    )
    assert f'<a href="{sent_url}">6</a>' in body
    failed_url = f"{sends}?campaign__id__exact={campaign.pk}&amp;status__exact=failed"
    assert f'<a href="{failed_url}">3</a>' in body
    assert (
        f'<a href="{sends}?campaign__id__exact={campaign.pk}&amp;status__exact=queued">2</a>'
        in body
    )
    assert (
        f'<a href="{sends}?campaign__id__exact={campaign.pk}&amp;status__exact=suppressed">4</a>'
        in body
    )
    assert f"campaign__id__exact={quiet.pk}" not in body  # zeros are not links

    # Each link opens exactly the sends it counted.
    for query, expected in (
        (
            {"campaign__id__exact": campaign.pk, "status__exact": "failed"},
            set(campaign.sends.filter(status="failed").values_list("pk", flat=True)),
        ),
        (
            {
                "campaign__id__exact": campaign.pk,
                "status__in": "sent,delivered,opened,clicked,converted,dismissed",
            },
            set(
                campaign.sends.exclude(
                    status__in=["queued", "sending", "failed", "suppressed"]
                ).values_list("pk", flat=True)
            ),
        ),
        (
            {"campaign__id__exact": other.pk, "status__exact": "failed"},
            set(other.sends.values_list("pk", flat=True)),
        ),
    ):
        page = client.get(f"{sends}?{urlencode(query)}")
        assert page.status_code == 200
        assert {s.pk for s in page.context["cl"].result_list} == expected
    assert len(expected) == 5


def test_a_campaign_paused_by_failures_says_so_in_the_list(marketer):
    paused(name="Broken template")
    long = "paused after 10 sends in a row failed: SMTPRecipientsRefused: " + "x" * 100
    paused(name="Refused", paused_reason=long)
    CampaignFactory(name="Paused by hand", status="paused")
    CampaignFactory(name="Running")
    body = login(marketer).get(CHANGELIST).content.decode()
    red = (
        '<td class="field-state"><strong style="color: var(--error-fg, #ba2121); '
        'display: inline-block; min-width: 16em" title="'
    )
    assert f'{red}{ESCAPED_REASON}">Paused: {ESCAPED_REASON}</strong></td>' in body
    assert f'{red}{long}">Paused: {long[:79]}…</strong></td>' in body
    assert body.count("Paused: ") == 2
    assert '<td class="field-state">Paused</td>' in body  # by hand: no reason to give
    assert '<td class="field-state">Active</td>' in body


# --- the campaign page --------------------------------------------------------------------------


def test_the_campaign_page_shows_the_counts_and_why_it_paused(marketer):
    campaign = with_sends(paused(name="Broken"), {"failed": 2, "sent": 1, "queued": 1})
    SendFactory(campaign=campaign, status="failed", status_reason=UNKNOWN)
    body = login(marketer).get(f"{CHANGELIST}{campaign.pk}/change/").content.decode()
    sends = reverse("admin:campaigns_send_changelist")
    assert (
        f'sent: <a href="{sends}?campaign__id__exact={campaign.pk}&amp;status__in='
        'sent%2Cdelivered%2Copened%2Cclicked%2Cconverted%2Cdismissed">1</a>'
    ) in body
    assert (
        f'failed: <a href="{sends}?campaign__id__exact={campaign.pk}'
        '&amp;status__exact=failed">3</a>'
    ) in body
    assert "sending: 0" in body
    box = re.search(r'<ul class="messagelist" id="paused-by-failures">(.*?)</ul>', body, re.S)
    assert box is not None
    text = box.group(1)
    assert "Paused by delivery failures since 2026-03-02 10:00:" in text
    assert (
        "paused after 10 sends in a row failed: template: unknown variable &#x27;offer.nmae&#x27;"
        in text
    )
    assert "3 failed sends</a> (1 of unknown outcome or already left, never retried)" in text
    assert (
        "fix the cause (usually the template or the offer), then "
        "<em>Retry failed sends</em> and <em>Resume</em>" in text
    )
    assert 'value="Retry failed sends (2)"' in text
    assert f'action="{CHANGELIST}{campaign.pk}/retry-failed/"' in text
    assert f'action="{CHANGELIST}{campaign.pk}/resume/"' in text


def test_a_campaign_not_paused_by_failures_has_no_warning(marketer):
    by_hand = CampaignFactory(status="paused")
    running = with_sends(CampaignFactory(), {"sent": 2})
    client = login(marketer)
    hand = client.get(f"{CHANGELIST}{by_hand.pk}/change/").content.decode()
    assert "paused-by-failures" not in hand
    assert 'value="Resume"' in hand  # still resumable, from the tools
    assert "Retry failed sends" not in hand  # nothing failed
    page = client.get(f"{CHANGELIST}{running.pk}/change/").content.decode()
    assert "paused-by-failures" not in page
    assert "recover-tools" not in page


def test_the_creator_sees_why_their_campaign_paused_but_no_buttons(creator):
    campaign = with_sends(paused(course=CourseFactory(creator=creator)), {"failed": 1})
    body = login(creator).get(f"{CHANGELIST}{campaign.pk}/change/").content.decode()
    assert "Paused by delivery failures" in body
    assert "A marketer can retry and resume it." in body
    assert "retry-failed/" not in body
    assert "resume/" not in body


# --- retry and resume ---------------------------------------------------------------------------


@pytest.fixture
def failures():
    """A paused campaign's sends: two retryable failures and those that must stay."""
    campaign = paused(name="Broken")
    lease = DispatchLeaseFactory()
    retry = [
        SendFactory(
            campaign=campaign,
            status="failed",
            status_reason="template: unknown variable 'offer.nmae'",
            attempts=1,
            claimed_at=NOW - timedelta(hours=1),
            handoff_at=None,
            lease=lease.id,
            scheduled_for=NOW - timedelta(days=1),
        ),
        SendFactory(
            campaign=campaign,
            status="failed",
            status_reason="gave up after 8 attempts: SMTPServerDisconnected: gone",
            attempts=8,
            handoff_at=NOW - timedelta(hours=2),
        ),
    ]
    stay = [
        # The server may have taken it: never sent again by itself.
        SendFactory(
            campaign=campaign,
            status="failed",
            status_reason=UNKNOWN,
            attempts=1,
            handoff_at=NOW - timedelta(hours=3),
        ),
        # It left, then bounced: the address is suppressed.
        SendFactory(
            campaign=campaign,
            status="failed",
            status_reason="bounced: mailbox unavailable",
            sent_at=NOW - timedelta(hours=4),
            attempts=1,
        ),
        # In-app cards are served, not dispatched.
        SendFactory(campaign=campaign, channel="in_app", status="failed", status_reason="x"),
        SendFactory(campaign=campaign, status="queued"),
        SendFactory(campaign=campaign, status="sent", sent_at=NOW),
        SendFactory(campaign=CampaignFactory(name="Other"), status="failed", status_reason="y"),
    ]
    return campaign, retry, stay


def _snapshot(sends: list[Send]) -> list[tuple]:
    return list(
        Send.objects.filter(pk__in=[s.pk for s in sends])
        .order_by("pk")
        .values_list(
            "status", "status_reason", "attempts", "handoff_at", "lease", "scheduled_for", "sent_at"
        )
    )


def test_retry_moves_exactly_the_retryable_failed_emails_back_to_the_queue(failures):
    campaign, retry, stay = failures
    before = _snapshot(stay)
    assert set(retryable_failed(campaign).values_list("pk", flat=True)) == {s.pk for s in retry}

    assert sends_retry_failed(campaign=campaign, now=NOW) == 2

    assert _snapshot(retry) == [("queued", "", 0, None, None, NOW, None)] * 2
    assert list(
        Send.objects.filter(pk__in=[s.pk for s in retry]).values_list("claimed_at", flat=True)
    ) == [None, None]
    assert _snapshot(stay) == before
    events = SendEvent.objects.filter(send__in=retry).order_by("send_id")
    assert [(e.send_id, e.kind, e.at, e.detail) for e in events] == [
        (
            retry[0].pk,
            "retried",
            NOW,
            "retried by hand after: template: unknown variable 'offer.nmae'",
        ),
        (
            retry[1].pk,
            "retried",
            NOW,
            "retried by hand after: gave up after 8 attempts: SMTPServerDisconnected: gone",
        ),
    ]
    assert not SendEvent.objects.filter(send__in=stay).exists()
    # Nothing failed is left to retry: a second call changes nothing.
    assert sends_retry_failed(campaign=campaign, now=NOW + timedelta(minutes=1)) == 0
    assert SendEvent.objects.count() == 2
    campaign.refresh_from_db()
    assert campaign.status == "paused"  # retrying does not resume


def test_resume_sets_a_paused_campaign_active_and_clears_why():
    campaign = paused()
    campaign_resume(campaign=campaign)
    campaign.refresh_from_db()
    assert (
        campaign.status,
        campaign.paused_reason,
        campaign.paused_at,
        campaign.failure_streak,
        campaign.failure_reason,
    ) == ("active", "", None, 0, "")


def test_resume_refuses_a_campaign_that_is_not_paused_and_changes_nothing():
    draft = CampaignFactory(status="draft", failure_streak=3, failure_reason="template: x")
    with pytest.raises(CampaignError, match="only a paused campaign can be resumed, not draft"):
        campaign_resume(campaign=draft)
    draft.refresh_from_db()
    assert (draft.status, draft.failure_streak, draft.failure_reason) == ("draft", 3, "template: x")


def test_resume_refuses_while_something_keeps_it_from_going_active():
    campaign = paused(email_template=None)
    with pytest.raises(CampaignError, match="needs an email or in-app template"):
        campaign_resume(campaign=campaign)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.paused_reason) == ("paused", REASON)


def test_the_buttons_retry_and_resume_and_the_admin_log_says_who(marketer, failures):
    campaign, retry, stay = failures
    before = _snapshot(stay)
    client = login(marketer)
    response = client.post(f"{CHANGELIST}{campaign.pk}/retry-failed/", follow=True)
    assert response.redirect_chain == [(f"{CHANGELIST}{campaign.pk}/change/", 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "2 failed send(s) queued again. 1 of unknown outcome left as they are: the mail server "
        "may have taken them, and a message never leaves twice."
    ]
    assert [row[0] for row in _snapshot(retry)] == ["queued", "queued"]
    assert _snapshot(stay) == before

    response = client.post(f"{CHANGELIST}{campaign.pk}/resume/", follow=True)
    assert [str(m) for m in response.context["messages"]] == ["1 campaign(s) resumed."]
    campaign.refresh_from_db()
    assert (campaign.status, campaign.paused_reason) == ("active", "")
    assert list(
        LogEntry.objects.filter(user=marketer, object_id=str(campaign.pk))
        .order_by("pk")
        .values_list("change_message", flat=True)
    ) == ["Retried 2 failed send(s)", "Resumed"]
    # Resuming an active campaign is refused, with its reason.
    response = client.post(f"{CHANGELIST}{campaign.pk}/resume/", follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Broken: only a paused campaign can be resumed, not active"
    ]


def test_the_buttons_take_only_a_post(marketer, failures):
    campaign, retry, _ = failures
    client = login(marketer)
    assert client.get(f"{CHANGELIST}{campaign.pk}/retry-failed/").status_code == 405
    assert client.get(f"{CHANGELIST}{campaign.pk}/resume/").status_code == 405
    assert [row[0] for row in _snapshot(retry)] == ["failed", "failed"]
    campaign.refresh_from_db()
    assert campaign.status == "paused"


def test_the_list_actions_retry_and_resume_the_selected_campaigns(marketer, failures):
    campaign, retry, stay = failures
    other = Campaign.objects.get(name="Other")
    before = _snapshot(stay)
    client = login(marketer)
    client.post(CHANGELIST, {"action": "retry_failed", "_selected_action": [campaign.pk]})
    assert [row[0] for row in _snapshot(retry)] == ["queued", "queued"]
    assert _snapshot(stay) == before  # "Other" was not selected: its failure stays
    assert other.sends.get().status == "failed"
    client.post(CHANGELIST, {"action": "resume", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == "active"


def test_a_creator_cannot_retry_or_resume_another_creators_campaign(creator):
    other = _role(COURSE_CREATOR)
    theirs = with_sends(paused(name="Theirs", course=CourseFactory(creator=other)), {"failed": 2})
    mine = with_sends(paused(name="Mine", course=CourseFactory(creator=creator)), {"failed": 1})
    client = login(creator)
    # Not theirs to see: "no such campaign".
    assert client.post(f"{CHANGELIST}{theirs.pk}/retry-failed/").status_code == 404
    assert client.post(f"{CHANGELIST}{theirs.pk}/resume/").status_code == 404
    # Their own: seen, but running it is a marketer's job.
    assert client.post(f"{CHANGELIST}{mine.pk}/retry-failed/").status_code == 403
    assert client.post(f"{CHANGELIST}{mine.pk}/resume/").status_code == 403
    # Nor through the list's actions, which a creator is not offered.
    for action in ("retry_failed", "resume"):
        client.post(CHANGELIST, {"action": action, "_selected_action": [theirs.pk, mine.pk]})
    actions = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "retry_failed" not in actions
    assert "resume" not in actions

    assert set(Send.objects.values_list("status", flat=True)) == {"failed"}
    assert set(Campaign.objects.values_list("status", "paused_reason")) == {("paused", REASON)}
    assert not SendEvent.objects.exists()
    assert not LogEntry.objects.exists()


# --- the funnel ---------------------------------------------------------------------------------


def test_the_funnel_accounts_for_every_send_by_status():
    campaign = CampaignFactory(name="Everything")
    now = timezone.now()
    stamps = {
        "sent": {"sent_at": now},
        "delivered": {"sent_at": now, "delivered_at": now},
        "opened": {"sent_at": now, "delivered_at": now, "opened_at": now},
        "clicked": {"sent_at": now, "delivered_at": now, "opened_at": now, "clicked_at": now},
        "converted": {
            "sent_at": now,
            "delivered_at": now,
            "opened_at": now,
            "clicked_at": now,
            "converted_at": now,
            "revenue": Decimal("50.00"),
        },
        "dismissed": {"channel": "in_app", "sent_at": now, "seen_at": now, "dismissed_at": now},
    }
    for status in SendStatus.values:
        extra = dict(stamps.get(status, {}))
        if status == "converted":
            extra["converted_order"] = OrderFactory()
        SendFactory(campaign=campaign, status=status, **extra)
    SendFactory(campaign=campaign, status="failed", status_reason="template: x")
    SendFactory(campaign=campaign, status="queued")
    SendFactory(campaign=campaign, status="suppressed", rule="low_lps")
    SendFactory(status="sent", is_test=True, sent_at=now)  # a test send never counts

    (row,) = funnel(by="campaign")

    assert row == {
        "key": "Everything",
        "eligible": 13,
        "suppressed": 2,
        "queued": 2,
        "sending": 1,
        "failed": 2,
        "sent": 6,  # sent, delivered, opened, clicked, converted, dismissed
        "delivered": 4,
        "opened": 4,  # the in-app card seen counts as opened
        "clicked": 2,
        "converted": 1,
        "dismissed": 1,
        "revenue": Decimal("50.00"),
    }
    accounted = row["suppressed"] + row["queued"] + row["sending"] + row["sent"] + row["failed"]
    assert accounted == row["eligible"]


def test_the_funnel_page_shows_where_each_send_is(admin_client):
    campaign = with_sends(CampaignFactory(name="Stuck"), {"suppressed": 24, "failed": 59})
    body = admin_client.get(reverse("admin:campaigns_campaign_funnel")).content.decode()
    assert (
        '<p class="funnel-accounting">83 eligible = 24 suppressed + 0 queued + 0 sending + '
        '<strong style="color: var(--error-fg, #ba2121)">59 failed</strong> + 0 sent</p>'
    ) in body
    assert (
        "<tr><td>Stuck</td><td>83</td><td>24</td><td>0</td><td>0</td><td>59</td><td>0</td>"
    ) in body
    assert '<rect x="80" y="56" width="370" height="10" fill="#ba2121"><title>failed: 59' in body
    assert campaign.sends.count() == 83


def test_a_creator_sees_the_funnel_of_their_own_courses_only(creator):
    with_sends(CampaignFactory(name="Mine", course=CourseFactory(creator=creator)), {"sent": 1})
    with_sends(CampaignFactory(name="Theirs", course=CourseFactory()), {"failed": 1})
    with_sends(CampaignFactory(name="No course"), {"queued": 1})
    body = login(creator).get(reverse("admin:campaigns_campaign_funnel")).content.decode()
    assert 'aria-label="Funnel for Mine"' in body
    assert "Theirs" not in body
    assert "No course" not in body
    assert [row["key"] for row in funnel(creator_id=creator.pk)] == ["Mine"]


# --- the home page ------------------------------------------------------------------------------


def _box(body: str) -> str | None:
    """The "Needs attention" box's text, its white space folded."""
    found = re.search(
        r'<section id="needs-attention" class="home-section">(.*?)</section>', body, re.S
    )
    return " ".join(found.group(1).split()) if found else None


def test_the_home_page_lists_campaigns_paused_by_failures_and_an_open_circuit(marketer):
    broken = paused(name="Broken template")
    CampaignFactory(name="Paused by hand", status="paused")
    CampaignFactory(name="Fine")
    MailCircuitFactory(
        failures=3,
        opened_at=NOW,
        open_until=timezone.now() + timedelta(seconds=40),
        last_error="SMTPConnectError: (421, 'Service not available')",
    )
    box = _box(login(marketer).get(reverse("admin:index")).content.decode())
    assert box is not None
    assert (
        '<div class="attention-item error"> '
        f'<a href="/admin/campaigns/campaign/{broken.pk}/change/"><strong>Broken template: '
        "paused by failures since 2026-03-02 10:00</strong></a> "
        f'<div class="detail">{ESCAPED_REASON} Fix the cause, then Retry failed sends and '
        "Resume on its page.</div> </div>"
    ) in box
    assert "Paused by hand" not in box
    assert "Fine" not in box
    assert (
        '<div class="attention-item error"> <strong>Mail server unreachable: no email is '
        'leaving since 2026-03-02 10:00</strong> <div class="detail">3 failed attempts in a row, '
        "next try at "
    ) in box
    assert (
        "Queued sends wait and leave when it answers again; nothing is lost. Last error: "
        "SMTPConnectError: (421, &#x27;Service not available&#x27;)</div>"
    ) in box
    assert box.index("Mail server unreachable") < box.index("Broken template")


def test_the_circuit_stays_on_the_home_page_between_probes_and_leaves_once_closed(marketer):
    # The pause is over but no delivery has closed it yet: the server is still unreachable.
    circuit = MailCircuitFactory(
        failures=5, opened_at=NOW, open_until=NOW + timedelta(seconds=5), last_error="refused"
    )
    attention = needs_attention(user=marketer, now=NOW + timedelta(minutes=5))
    assert (attention.circuit, attention.next_try, attention.campaigns) == (circuit, None, [])
    box = _box(login(marketer).get(reverse("admin:index")).content.decode())
    assert "5 failed attempts in a row, being tried again now." in box
    # Closed (what campaigns.circuit.circuit_close leaves): nothing in the box.
    circuit.failures, circuit.open_until, circuit.opened_at = 0, None, None
    circuit.save()
    box = _box(login(marketer).get(reverse("admin:index")).content.decode())
    assert "Mail server" not in box
    assert "attention-item" not in box
    assert "Nothing needs you now" in box


def test_the_home_page_shows_a_creator_only_their_own_paused_campaigns(creator):
    paused(name="Mine", course=CourseFactory(creator=creator))
    paused(name="Theirs", course=CourseFactory())
    box = _box(login(creator).get(reverse("admin:index")).content.decode())
    assert box is not None
    assert "Mine" in box
    assert "Theirs" not in box


def test_no_box_for_staff_without_a_role():
    paused(name="Broken")
    body = login(UserFactory(is_staff=True)).get(reverse("admin:index")).content.decode()
    assert "Needs attention" not in body


def test_the_home_page_reads_the_circuit_without_creating_it(marketer):
    assert login(marketer).get(reverse("admin:index")).status_code == 200
    assert not MailCircuit.objects.exists()


# --- the send admin -----------------------------------------------------------------------------


def test_a_failed_reason_is_cut_in_the_list_and_whole_on_hover_and_on_its_page(marketer):
    reason = "template: " + "unknown variable 'offer.nmae' in the subject line; " * 4
    reason = reason.strip()
    send = SendFactory(campaign=CampaignFactory(), status="failed", status_reason=reason)
    SendFactory(campaign=send.campaign, status="failed", status_reason="template: short")
    client = login(marketer)
    listing = client.get(
        reverse("admin:campaigns_send_changelist") + "?status__exact=failed"
    ).content.decode()
    escaped = reason.replace("'", "&#x27;")
    span = '<span title="{}" style="display: inline-block; min-width: 18em">'
    assert span.format(escaped) in listing
    cut = re.search(span.format('[^"]*') + "([^<]*)</span>", listing)
    assert cut is not None
    assert cut.group(1).endswith("…")
    assert len(cut.group(1).replace("&#x27;", "'")) == 60
    assert '<td class="field-why">template: short</td>' in listing
    page = client.get(reverse("admin:campaigns_send_change", args=[send.pk])).content.decode()
    assert f'<div class="readonly">{escaped}</div>' in page
    # Its outcome comes first on the page.
    assert page.index("Outcome") < page.index("Who and why") < page.index("Tracking")


def test_the_send_list_filters_by_status(marketer):
    assert (
        "status"
        in login(marketer)
        .get(reverse("admin:campaigns_send_changelist"))
        .context["cl"]
        .model_admin.list_filter
    )


def test_factories_for_the_delivery_models():
    lease = DispatchLeaseFactory()
    assert lease.expires_at - lease.claimed_at == timedelta(seconds=60)
    assert isinstance(lease.id, uuid.UUID)
    assert MailCircuitFactory().pk == MailCircuitFactory(last_error="x").pk == 1
