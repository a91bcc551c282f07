"""The one personalisation-context builder: exact contexts, a fixed number of queries for any
number of messages, and preview (and test send) building through it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from expansion.commerce.models import CommerceSettings, ProductKind
from learners.models import Course, EventKind, Learner
from templates.context import (
    PREVIEW_LINKS,
    PREVIEW_REASON,
    VARIABLES,
    ContextRequest,
    contexts_build,
    preview_context,
)
from templates.messages import template_snapshot
from templates.models import MessageTemplate
from tests.factories.expansion import (
    OfferFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.factories.learners import (
    AccountFactory,
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    LearnerScoreFactory,
    ModuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
D = Decimal


@pytest.fixture(autouse=True)
def _company(settings):
    settings.EXPANSION_COMPANY_NAME = "Expansion Academy"
    settings.EXPANSION_ADDRESS = "1 Example Street, Example City"


def course_with_modules(title: str, n: int = 8):
    course = CourseFactory(title=title)
    modules = [
        ModuleFactory(course=course, position=p, title=f"Module {p}") for p in range(1, n + 1)
    ]
    return course, modules


def event(learner, kind, days_ago: float, **extra):
    return EventFactory(
        learner=learner, kind=kind, occurred_at=NOW - timedelta(days=days_ago), **extra
    )


def discount_offer(**kwargs):
    defaults = {
        "name": "Next course",
        "product": ProductFactory(name="SQL Intermediate", price=D("200.00")),
        "incentive": "discount",
        "discount_percent": 25,
        "bonus": "A review call",
        "valid_hours": 48,
        "cta_url": "https://learn.example.org/sql-2",
        "positioning": "The next step after SQL Basics.",
    }
    return OfferFactory(**{**defaults, **kwargs})


@pytest.fixture
def ana():
    """Ana: 4 of 8 modules of SQL Basics (one of them 40 days ago), two assessments and four
    logins this month, 900 of her 1,000 quota used on Basic membership."""
    learner = LearnerFactory(
        external_id="ana", name="Ana Lima", email="ana@example.org", time_zone="Asia/Tokyo"
    )
    LearnerScoreFactory(
        learner=learner,
        lps=81.6,
        band="high",
        stage="growth",
        completion=0.375,
        assessment=0.855,
        community=0.2,
        downloads=0.123456,
        login=0.9,
    )
    course, modules = course_with_modules("SQL Basics")
    EnrollmentFactory(learner=learner, course=course, progress=D("37.50"))
    for days, module in zip((10, 9, 8), modules[:3], strict=True):
        event(learner, EventKind.MODULE_COMPLETED, days, course=course, module=module)
    event(learner, EventKind.MODULE_COMPLETED, 40, course=course, module=modules[3])
    event(learner, EventKind.ASSESSMENT_SUBMITTED, 9, course=course, value=80)
    event(learner, EventKind.ASSESSMENT_SUBMITTED, 8, course=course, value=91)
    event(learner, EventKind.ASSESSMENT_SUBMITTED, 40, course=course, value=10)  # too old
    for days in (1, 2, 3, 29.9):
        event(learner, EventKind.LOGIN, days)
    event(learner, EventKind.LOGIN, 31)  # outside the 30 days
    event(learner, EventKind.LOGIN, -0.1)  # after now
    SubscriptionFactory(
        learner=learner,
        plan=ProductFactory(name="Basic membership", kind=ProductKind.PLAN, price=D("19.00")),
        quota_used=900,
        quota_limit=1000,
    )
    return learner


def sql_basics():
    return Course.objects.get(title="SQL Basics")


def expected_ana(offer: dict) -> dict:
    return {
        "learner": {
            "first_name": "Ana",
            "name": "Ana Lima",
            "email": "ana@example.org",
            "time_zone": "Asia/Tokyo",
            "locale": "en",
            "external_id": "ana",
        },
        "score": {
            "lps": 82,
            "band": "high",
            "stage": "growth",
            "completion": 0.375,
            "assessment": 0.855,
            "community": 0.2,
            "downloads": 0.1235,
            "login": 0.9,
        },
        "course": {
            "title": "SQL Basics",
            "progress": 0.375,
            "modules_completed": 4,
            "modules_total": 8,
            "next_module": "Module 5",
            "url": "",
        },
        "offer": offer,
        "usage": {"percent": 0.9, "used": 900, "quota": 1000, "plan": "Basic membership"},
        "receipt": {
            "modules_completed_30d": 3,
            "assessments_30d": 2,
            "average_score_30d": 85.5,
            "logins_30d": 4,
        },
        "reason": "completed the final module of SQL Basics",
        "unsubscribe_url": "",
        "preferences_url": "",
        "company": {"name": "Expansion Academy", "address": "1 Example Street, Example City"},
    }


OFFER_DISCOUNTED = {
    "name": "Next course",
    "product": "SQL Intermediate",
    "price": D("150.00"),
    "list_price": D("200.00"),
    "discount_percent": 25,
    "saving": D("50.00"),
    "bonus": "",
    "expires_at": NOW + timedelta(hours=48),
    "cta_url": "https://learn.example.org/sql-2",
    "positioning": "The next step after SQL Basics.",
}


def test_the_context_of_a_learner_is_exact_and_documented(ana):
    offer = discount_offer()

    (context,) = contexts_build(
        requests=[
            ContextRequest(
                learner=ana,
                course_id=sql_basics().pk,
                offer=offer,
                reason="completed the final module of SQL Basics",
            )
        ],
        now=NOW,
    )

    assert context == expected_ana(OFFER_DISCOUNTED)
    assert isinstance(context["course"]["progress"], float)
    assert isinstance(context["score"]["lps"], int)
    # Every variable the admin documents is there, and nothing undocumented.
    for root, members in VARIABLES.items():
        assert root in context, root
        if "" not in members:
            assert set(context[root]) == set(members), root


def test_the_discount_guard_gives_the_bonus_to_a_recent_discount_buyer_in_the_same_chunk(ana):
    offer = discount_offer()
    ben = LearnerFactory(external_id="ben", name="Ben Okafor")
    order = OrderFactory(learner=ben, placed_at=NOW - timedelta(days=10))
    bought = ProductFactory(price=D("100.00"))
    OrderLineFactory(order=order, product=bought, unit_price=D("70.00"))  # below list price
    cleo = LearnerFactory(external_id="cleo")
    old = OrderFactory(learner=cleo, placed_at=NOW - timedelta(days=91))  # before the cooldown
    OrderLineFactory(order=old, product=bought, unit_price=D("70.00"))

    contexts = contexts_build(
        requests=[ContextRequest(learner=p, offer=offer) for p in (ana, ben, cleo)], now=NOW
    )

    assert [c["offer"] for c in contexts] == [
        OFFER_DISCOUNTED,
        {
            **OFFER_DISCOUNTED,
            "price": D("200.00"),
            "discount_percent": 0,
            "saving": D("0.00"),
            "bonus": "A review call",
        },
        OFFER_DISCOUNTED,
    ]


def test_without_a_course_the_latest_enrollment_is_the_course(ana):
    newer, modules = course_with_modules("SQL Intermediate", n=2)
    EnrollmentFactory(
        learner=ana, course=newer, enrolled_at=NOW - timedelta(days=1), progress=D("50")
    )
    event(ana, EventKind.MODULE_COMPLETED, 0.5, course=newer, module=modules[0])
    stranger = LearnerFactory(external_id="stranger")
    never, _ = course_with_modules("Never enrolled", n=3)

    contexts = contexts_build(
        requests=[
            ContextRequest(learner=ana),
            ContextRequest(learner=ana, course_id=sql_basics().pk),
            ContextRequest(learner=stranger),
            ContextRequest(learner=stranger, course_id=never.pk),
        ],
        now=NOW,
    )

    assert contexts[0]["course"] == {
        "title": "SQL Intermediate",
        "progress": 0.5,
        "modules_completed": 1,
        "modules_total": 2,
        "next_module": "Module 2",
        "url": "",
    }
    assert contexts[1]["course"]["title"] == "SQL Basics"
    assert "course" not in contexts[2]  # no course and no enrollment: nothing to say
    # A message about a course the learner is not enrolled in still knows the course.
    assert contexts[3]["course"] == {
        "title": "Never enrolled",
        "progress": 0.0,
        "modules_completed": 0,
        "modules_total": 3,
        "next_module": "Module 1",
        "url": "",
    }
    # No score, no usage, an empty receipt.
    assert ("score" in contexts[2], "usage" in contexts[2]) == (False, False)
    assert contexts[2]["receipt"] == {
        "modules_completed_30d": 0,
        "assessments_30d": 0,
        "average_score_30d": None,
        "logins_30d": 0,
    }


def test_usage_is_the_learner_s_live_plan_else_their_team_s():
    plan = ProductFactory(name="Pro membership", kind=ProductKind.PLAN)
    own = LearnerFactory(external_id="own")
    SubscriptionFactory(
        learner=own,
        plan=plan,
        quota_used=3,
        quota_limit=7,
        started_at=NOW - timedelta(days=30),
    )
    SubscriptionFactory(  # newer, but cancelled: not the one in use
        learner=own,
        plan=ProductFactory(name="Old plan", kind=ProductKind.PLAN),
        status="cancelled",
        quota_used=1,
        quota_limit=10,
        started_at=NOW - timedelta(days=5),
    )
    team = AccountFactory()
    member = LearnerFactory(external_id="member", account=team)
    SubscriptionFactory(
        learner=None,
        account=team,
        plan=ProductFactory(name="Team plan", kind=ProductKind.PLAN),
        quota_used=9_500,
        quota_limit=10_000,
    )
    nobody = LearnerFactory(external_id="nobody")
    SubscriptionFactory(learner=nobody, quota_limit=None)  # no quota: no usage

    contexts = contexts_build(
        requests=[ContextRequest(learner=p) for p in (own, member, nobody)], now=NOW
    )

    assert contexts[0]["usage"] == {
        "percent": 0.4286,
        "used": 3,
        "quota": 7,
        "plan": "Pro membership",
    }
    assert contexts[1]["usage"] == {
        "percent": 0.95,
        "used": 9_500,
        "quota": 10_000,
        "plan": "Team plan",
    }
    assert "usage" not in contexts[2]


def crowd(n: int, *, offers: list) -> list[ContextRequest]:
    """``n`` learners each with everything a context reads, half of the requests with a course
    and half on their latest enrollment, the discount guard holding every third."""
    course, modules = course_with_modules(f"Crowd course {n}", n=4)
    other, _ = course_with_modules(f"Crowd other {n}", n=2)
    team = AccountFactory()
    requests = []
    for i in range(n):
        learner = LearnerFactory(account=team if i % 2 else None)
        LearnerScoreFactory(learner=learner)
        EnrollmentFactory(learner=learner, course=course, progress=D("50"))
        event(learner, EventKind.MODULE_COMPLETED, 2, course=course, module=modules[0])
        event(learner, EventKind.ASSESSMENT_SUBMITTED, 2, course=course, value=70 + i)
        event(learner, EventKind.LOGIN, 1)
        SubscriptionFactory(learner=learner, quota_used=i, quota_limit=100)
        if i % 3 == 0:
            order = OrderFactory(learner=learner, placed_at=NOW - timedelta(days=3))
            OrderLineFactory(order=order, unit_price=D("1.00"))
        course_id = [course.pk, None, other.pk][i % 3]  # other: not enrolled
        requests.append((learner.pk, course_id, offers[i % len(offers)]))
    # Fresh from the database: the factories leave each learner's score cached on it.
    learners = Learner.objects.in_bulk([pk for pk, _, _ in requests])
    return [
        ContextRequest(learner=learners[pk], course_id=course_id, offer=offer)
        for pk, course_id, offer in requests
    ]


def queries_for(requests: list[ContextRequest], **kwargs) -> tuple[int, list[dict]]:
    with CaptureQueriesContext(connection) as captured:
        contexts = contexts_build(requests=requests, now=NOW, **kwargs)
    return len(captured.captured_queries), contexts


def test_a_fixed_number_of_queries_for_any_number_of_requests(django_assert_num_queries):
    CommerceSettings.load()
    offers = [discount_offer(), OfferFactory(name="Plain"), discount_offer(name="Other")]
    few, many = crowd(3, offers=offers), crowd(30, offers=offers)

    # scores, latest enrollments, the (learner, course) enrollments, the courses nobody is
    # enrolled in, modules, modules completed, usage, receipts, commerce settings, the guard.
    with django_assert_num_queries(10):
        three = contexts_build(requests=few, now=NOW)
    with django_assert_num_queries(10):
        thirty = contexts_build(requests=many, now=NOW)
    assert (len(three), len(thirty)) == (3, 30)
    assert [c["offer"]["discount_percent"] for c in thirty[:4]] == [0, 0, 25, 0]
    assert [c["course"]["modules_completed"] for c in thirty[:3]] == [1, 1, 0]
    assert [c["receipt"]["average_score_30d"] for c in thirty[:3]] == [70.0, 71.0, 72.0]
    # With the settings given and the scores loaded with the learners (as dispatch loads
    # them), two fewer.
    for request in many:
        request.learner.score  # noqa: B018 - loads and caches it, like select_related
    policy = CommerceSettings.load()
    assert queries_for(many, policy=policy)[0] == 8
    # Every request on a course they are enrolled in, no offer: six.
    plain = [ContextRequest(learner=r.learner, course_id=None) for r in few]
    assert queries_for(plain)[0] == queries_for(plain * 10)[0] == 6
    assert queries_for([]) == (0, [])


def test_preview_is_contexts_build_for_the_same_request(ana):
    discount_offer(name="B offer")
    first = discount_offer(name="A offer")
    discount_offer(name="0 inactive", is_active=False)

    preview = preview_context(learner=ana, now=NOW)

    (built,) = contexts_build(
        requests=[ContextRequest(learner=ana, offer=first, reason=PREVIEW_REASON)], now=NOW
    )
    assert preview == {**built, **PREVIEW_LINKS}
    assert preview == {
        **expected_ana({**OFFER_DISCOUNTED, "name": "A offer"}),
        "reason": PREVIEW_REASON,
        **PREVIEW_LINKS,
    }
    # About a given course and offer, as a send would be.
    other, _ = course_with_modules("Other", n=1)
    plain = OfferFactory(name="Plain", product=ProductFactory(name="Cert", price=D("49")))
    about = preview_context(learner=ana, now=NOW, course_id=other.pk, offer=plain, reason="r")
    (send,) = contexts_build(
        requests=[ContextRequest(learner=ana, course_id=other.pk, offer=plain, reason="r")],
        now=NOW,
    )
    assert about == {**send, **PREVIEW_LINKS}
    assert (about["course"]["title"], about["offer"]["price"]) == ("Other", D("49.00"))


def test_a_test_send_renders_the_starter_with_the_full_context(client, ana):
    client.force_login(UserFactory(username="copywriter", is_staff=True, is_superuser=True))
    discount_offer()
    template = MessageTemplate.objects.get(name="Cross-sell: the next step")
    template_snapshot(template=template)
    url = f"/admin/message_templates/messagetemplate/{template.pk}/preview/?learner=ana"

    assert client.get(url).status_code == 200
    client.post(url, {"learner": "ana", "to": "me@example.org"})

    (sent,) = mail.outbox
    assert sent.subject == "[TEST] The next step after SQL Basics"
    assert "You've completed 4 of 8 modules of SQL Basics." in sent.body
    assert "get 25% off: $150 instead of $200 until" in sent.body
