"""Deterministic demo data, built from the test factories.

``demo_seed(seed=42, anchor=date)`` produces the same rows for the same seed and anchor date:
a few thousand learners on two learning paths of three courses, their enrollments, events
(logins, module completions, assessments, downloads, bookmarks, community posts, usage),
orders and subscriptions. Written with bulk_create in a handful of statements per table.

The rows built with the test factories are built here, and only here (the one module the
import contracts let import ``tests.factories``), in the order that keeps a seed's rows the
same; what the demo adds without factories has its own module: ``offers``, ``mrr``,
``segments``, ``experiment`` and ``campaigns``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast

import factory.random
from django.contrib.auth.models import Group
from django.db import transaction

from campaigns.roles import COURSE_CREATOR
from expansion.commerce.models import (
    Order,
    OrderLine,
    Product,
    ProductKind,
    Subscription,
    SubscriptionStatus,
)
from expansion.commerce.sync import subscription_changes_backfill
from learners.models import Account, Course, Enrollment, Event, EventKind, Learner, Module
from tests.factories.expansion import (
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.factories.learners import (
    AccountFactory,
    CourseFactory,
    EnrollmentFactory,
    LearnerFactory,
    ModuleFactory,
    UserFactory,
)

from .campaigns import demo_campaigns
from .experiment import demo_experiment
from .mrr import demo_mrr_moves
from .offers import demo_offers
from .segments import demo_segments

PATHS = {
    "Data": ["SQL Basics", "SQL Intermediate", "SQL Advanced"],
    "Marketing": ["Copywriting 101", "SEO Fundamentals", "Email Marketing Mastery"],
}
MODULES_PER_COURSE = 8
STALL_EVERY = 40  # every 40th learner was active weekly and has gone silent
TIME_ZONES = [
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Tokyo",
]
EXTRAS = [
    ("COACH-1", "Implementation coaching (4 weeks)", ProductKind.COACHING, "390.00", "120.00"),
    ("COHORT-1", "Live cohort program", ProductKind.COHORT, "690.00", "200.00"),
    ("CERT-1", "Professional certificate", ProductKind.CERTIFICATE, "149.00", "15.00"),
    ("TPL-1", "Done-for-you template pack", ProductKind.TEMPLATES, "49.00", "2.00"),
    ("SESSION-1", "1:1 strategy session", ProductKind.SESSION, "180.00", "90.00"),
    ("ADDON-AI", "AI feedback add-on", ProductKind.ADDON, "9.00", "3.00"),
    ("SEATS-5", "Team seat pack (5)", ProductKind.SEAT_PACK, "95.00", "10.00"),
]
PLANS = [
    ("PLAN-BASIC", "Basic membership", "19.00"),
    ("PLAN-PRO", "Pro membership", "39.00"),
    ("PLAN-TEAM", "Team plan", "199.00"),
]


@dataclass
class DemoCounts:
    learners: int
    courses: int
    enrollments: int
    events: int
    orders: int
    subscriptions: int


def demo_seed(*, learners: int = 3000, seed: int = 42, anchor: date | None = None) -> DemoCounts:
    """Create demo data; returns what it created. Not idempotent: run on an empty database."""
    rng = random.Random(seed)
    factory.random.reseed_random(seed)
    anchor = anchor or datetime.now(UTC).date()
    now = datetime.combine(anchor, time(9, 0), tzinfo=UTC)

    with transaction.atomic():
        creators = [_demo_creator(f"creator_{n}") for n in ("ana", "ben")]
        catalogue = _demo_catalogue(creators)
        courses, modules = catalogue.courses, catalogue.modules
        course_products = catalogue.course_products
        extras, plans = catalogue.extras, catalogue.plans
        companions = {"Data": extras[:3], "Marketing": extras[2:5]}
        accounts = Account.objects.bulk_create(
            [AccountFactory.build(external_id=f"team-{n}") for n in range(1, 31)]
        )

        people = Learner.objects.bulk_create(
            [
                LearnerFactory.build(
                    external_id=f"demo-{n:05d}",
                    email=f"demo-{n:05d}@example.org",
                    time_zone=rng.choice(TIME_ZONES),
                    marketing_opt_in=rng.random() < 0.85,
                    unsubscribed_at=now - timedelta(days=rng.randint(1, 90))
                    if rng.random() < 0.03
                    else None,
                    # Every tenth learner is on a team, spread over all the accounts (n % 30
                    # put them all in three); each account's first member is its admin.
                    account=accounts[(n // 10) % len(accounts)] if n % 10 == 0 else None,
                    role="admin" if n % 10 == 0 and n // 10 <= len(accounts) else "member",
                )
                for n in range(1, learners + 1)
            ],
            batch_size=1000,
        )

        enrollments: list[Enrollment] = []
        events: list[Event] = []
        orders: list[Order] = []
        lines: list[OrderLine] = []
        key = 0

        def event(learner, kind, at, **extra) -> None:
            nonlocal key
            key += 1
            # Plain constructor: EventFactory.build costs ~250 µs a row, 20 s for 90k events.
            events.append(
                Event(
                    learner=learner,
                    kind=kind,
                    occurred_at=at,
                    idempotency_key=f"demo-{key}",
                    **extra,
                )
            )

        stalled: dict[int, datetime] = {}
        for index, person in enumerate(people, start=1):
            profile = rng.random()  # engagement: low values are dormant learners
            path = rng.choice(list(PATHS))  # one path per learner (it was drawn per course)
            path_courses = [c for c in courses if c.learning_path == path]
            taken = path_courses[: rng.choices([1, 2, 3], weights=[6, 3, 1])[0]]
            for course in taken:
                enrolled_at = now - timedelta(days=rng.randint(3, 400), hours=rng.randint(0, 23))
                done = min(
                    MODULES_PER_COURSE, int(profile * MODULES_PER_COURSE * rng.uniform(0.3, 1.4))
                )
                span = (now - enrolled_at).total_seconds()
                completed_at = None
                for position in range(1, done + 1):
                    at = enrolled_at + timedelta(seconds=span * position / (MODULES_PER_COURSE + 1))
                    module = modules[course.pk][position - 1]
                    event(person, EventKind.MODULE_COMPLETED, at, course=course, module=module)
                    if position % 2 == 0:
                        score = max(0.0, min(100.0, rng.gauss(55 + 40 * profile, 12)))
                        event(
                            person,
                            EventKind.ASSESSMENT_SUBMITTED,
                            at + timedelta(hours=1),
                            course=course,
                            value=round(score, 1),
                        )
                    if rng.random() < profile:
                        event(
                            person,
                            EventKind.RESOURCE_DOWNLOADED,
                            at + timedelta(hours=2),
                            course=course,
                        )
                    if rng.random() < profile / 2:
                        event(
                            person,
                            EventKind.LESSON_BOOKMARKED,
                            at + timedelta(hours=3),
                            course=course,
                        )
                    if position == MODULES_PER_COURSE:
                        completed_at = at
                if rng.random() < profile / 3:
                    event(
                        person,
                        EventKind.COMMUNITY_QUESTION
                        if rng.random() < 0.3
                        else EventKind.COMMUNITY_POST,
                        enrolled_at + timedelta(days=rng.randint(1, 30)),
                        course=course,
                        properties={
                            "text": rng.choice(
                                [
                                    "What should I learn after this?",
                                    "Great module!",
                                    "Stuck on exercise 3",
                                ]
                            )
                        },
                    )
                enrollments.append(
                    EnrollmentFactory.build(
                        learner=person,
                        course=course,
                        enrolled_at=enrolled_at,
                        completed_at=completed_at,
                        progress=Decimal(done * 100 / MODULES_PER_COURSE).quantize(Decimal("0.01")),
                    )
                )
                order = OrderFactory.build(
                    external_id=f"demo-order-{len(orders) + 1}",
                    learner=person,
                    placed_at=enrolled_at,
                )
                orders.append(order)
                product = course_products[course.pk]
                lines.append(
                    OrderLineFactory.build(
                        order=order, external_id="1", product=product, unit_price=product.price
                    )
                )
                if rng.random() < 0.12:
                    # Each path has its natural companions, so affinity has something to find.
                    pool = extras if rng.random() < 0.3 else companions[course.learning_path]
                    extra = rng.choice(pool)
                    lines.append(
                        OrderLineFactory.build(
                            order=order, external_id="2", product=extra, unit_price=extra.price
                        )
                    )
            if index % STALL_EVERY == 0:  # by position, not primary key: deterministic
                # Seed 000's stall: 3+ logins in each of four weeks, then 11–13 days of
                # silence (their later events are dropped below).
                silent_since = now - timedelta(days=rng.randint(11, 13))
                stalled[person.pk] = silent_since
                for week in range(4):
                    for n in range(4):
                        at = silent_since - timedelta(days=7 * week + n * 1.5)
                        event(person, EventKind.LOGIN, at)
                continue
            logins = int(profile * 40)
            for _ in range(logins):
                event(
                    person,
                    EventKind.LOGIN,
                    now - timedelta(days=rng.uniform(0, 60) / max(profile, 0.05)),
                )

        Enrollment.objects.bulk_create(enrollments, batch_size=2000)
        events = [
            e
            for e in events
            if e.occurred_at <= now and e.occurred_at <= stalled.get(e.learner.pk, now)
        ]
        Event.objects.bulk_create(events, batch_size=5000)
        Order.objects.bulk_create(orders, batch_size=2000)
        for line in lines:
            line.order_id = line.order.pk
        OrderLine.objects.bulk_create(lines, batch_size=2000)

        subscriptions = _demo_subscriptions(
            rng=rng, now=now, people=people, accounts=accounts, plans=plans
        )
        Subscription.objects.bulk_create(subscriptions, batch_size=2000)
        demo_mrr_moves(rng=rng, now=now, subscriptions=subscriptions, plans=plans)
        subscription_changes_backfill()
        demo_offers(course_products=course_products, extras=extras, plans=plans)
        demo_segments()
        demo_experiment(seed=seed, now=now)
        demo_campaigns()

    return DemoCounts(
        learners=len(people),
        courses=len(courses),
        enrollments=len(enrollments),
        events=len(events),
        orders=len(orders),
        subscriptions=len(subscriptions),
    )


def _demo_creator(username: str) -> Any:
    """A course creator who can sign in to review their courses' campaigns: staff, in the
    Course creator role, with no password until ``ensure_admin`` gives one (printed once)."""
    user: Any = UserFactory(username=username, is_staff=True)
    user.set_unusable_password()
    user.save()
    group, _ = Group.objects.get_or_create(name=COURSE_CREATOR)
    user.groups.add(group)
    return user


@dataclass
class _Catalogue:
    courses: list[Course]
    modules: dict[int, list[Module]]  # course id → its modules, by position
    course_products: dict[int, Product]  # course id → the product selling it
    extras: list[Product]
    plans: list[Product]


def _demo_catalogue(creators: list[Any]) -> _Catalogue:
    """The two learning paths' courses and modules, a product per course, the extras and
    the plans."""
    courses: list[Course] = []
    modules: dict[int, list[Module]] = {}
    for path_index, (path, titles) in enumerate(PATHS.items()):
        for position, title in enumerate(titles, start=1):
            course = cast(
                Course,
                CourseFactory(
                    external_id=f"{path.lower()}-{position}",
                    title=title,
                    creator=creators[path_index],
                    learning_path=path,
                    path_position=position,
                    url=f"https://learn.example.org/courses/{path.lower()}-{position}",
                ),
            )
            courses.append(course)
            modules[course.pk] = Module.objects.bulk_create(
                [
                    ModuleFactory.build(
                        course=course,
                        position=p,
                        external_id=f"m{p}",
                        title=f"{title}: module {p}",
                        is_final=p == MODULES_PER_COURSE,
                    )
                    for p in range(1, MODULES_PER_COURSE + 1)
                ]
            )
    course_products = {
        course.pk: ProductFactory(
            sku=f"COURSE-{course.external_id.upper()}",
            name=course.title,
            kind=ProductKind.COURSE,
            price=Decimal(99 + 50 * (course.path_position or 1) - 50),
            unit_cost=Decimal("10.00"),
            course=course,
        )
        for course in courses
    }
    extras = [
        ProductFactory(sku=sku, name=name, kind=kind, price=Decimal(p), unit_cost=Decimal(c))
        for sku, name, kind, p, c in EXTRAS
    ]
    plans = [
        ProductFactory(
            sku=sku,
            name=name,
            kind=ProductKind.PLAN,
            price=Decimal(p),
            unit_cost=Decimal("4.00"),
        )
        for sku, name, p in PLANS
    ]
    return _Catalogue(
        courses=courses,
        modules=modules,
        course_products=cast(dict[int, Product], course_products),
        extras=cast(list[Product], extras),
        plans=cast(list[Product], plans),
    )


def _demo_subscriptions(
    *,
    rng: random.Random,
    now: datetime,
    people: list[Learner],
    accounts: list[Account],
    plans: list[Product],
) -> list[Subscription]:
    """About 15 % of the learners on a Basic or Pro membership (some cancelled), and every
    account on the team plan with its seats and quota used (built, not saved)."""
    subscriptions: list[Subscription] = []
    members = [p for p in people if rng.random() < 0.15]
    for n, person in enumerate(members):
        plan = plans[n % 2]
        started = now - timedelta(days=rng.randint(10, 500))
        cancelled = rng.random() < 0.15
        subscriptions.append(
            SubscriptionFactory.build(
                external_id=f"demo-sub-{n + 1}",
                learner=person,
                plan=plan,
                mrr=plan.price,
                status=SubscriptionStatus.CANCELLED if cancelled else SubscriptionStatus.ACTIVE,
                started_at=started,
                cancelled_at=started + timedelta(days=rng.randint(5, 9)) if cancelled else None,
                renews_at=None if cancelled else now + timedelta(days=rng.randint(1, 365)),
            )
        )
    for n, account in enumerate(accounts):
        seats_limit = rng.choice([5, 10, 25])
        subscriptions.append(
            SubscriptionFactory.build(
                external_id=f"demo-team-sub-{n + 1}",
                learner=None,
                account=account,
                plan=plans[2],
                mrr=plans[2].price,
                status=SubscriptionStatus.ACTIVE,
                started_at=now - timedelta(days=rng.randint(30, 700)),
                renews_at=now + timedelta(days=rng.randint(1, 365)),
                seats_limit=seats_limit,
                seats_used=rng.randint(1, seats_limit),
                quota_limit=10_000,
                quota_used=rng.randint(500, 10_000),
            )
        )
    return subscriptions
