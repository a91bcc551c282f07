"""Deterministic demo data, built from the test factories.

``demo_seed(seed=42, anchor=date)`` produces the same rows for the same seed and anchor date:
a few thousand learners on two learning paths of three courses, their enrollments, events
(logins, module completions, assessments, downloads, bookmarks, community posts, usage),
orders and subscriptions. Written with bulk_create in a handful of statements per table.
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

from campaigns.models import Campaign, JourneyMoment
from campaigns.roles import COURSE_CREATOR
from expansion.commerce.models import (
    Bundle,
    BundleItem,
    ExpansionType,
    Incentive,
    Moment,
    Offer,
    OfferKind,
    Order,
    OrderLine,
    OutcomeGap,
    Product,
    ProductKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    Tier,
    TierLadder,
)
from expansion.commerce.sync import subscription_changes_backfill
from experiments.assignment import assign
from experiments.models import Arm, Experiment
from learners.models import (
    Account,
    Course,
    Enrollment,
    Event,
    EventKind,
    Learner,
    Module,
    Segment,
)
from templates.messages import template_snapshot
from templates.models import MessageTemplate
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


DEMO_SEGMENTS = [
    (
        "Expansion-ready",
        "High LPS, reachable, no open ticket (seed 000: test premium offers here).",
        {
            "all": [
                {"field": "band", "op": "in", "value": ["high"]},
                {"field": "reachable"},
                {"not": {"field": "flag", "value": "open_ticket"}},
            ]
        },
    ),
    (
        "Finish to unlock",
        "Mid LPS: 'finish to unlock' incentives before any upsell.",
        {"field": "band", "op": "in", "value": ["mid"]},
    ),
    (
        "Stalled learners",
        "Were active 3+ times a week, now 10+ days silent.",
        {"field": "flag", "value": "stall"},
    ),
    (
        "Completed SQL Basics",
        "Cross-sell candidates 2–4 weeks after completion.",
        {"field": "completed", "value": "data-1"},
    ),
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
        courses, modules = [], {}
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

        subscriptions = []
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
        Subscription.objects.bulk_create(subscriptions, batch_size=2000)
        _demo_mrr_moves(rng, now, subscriptions, cast(list[Product], plans))
        subscription_changes_backfill()
        _demo_offers(
            cast(dict[int, Product], course_products),
            cast(list[Product], extras),
            cast(list[Product], plans),
        )
        Segment.objects.bulk_create(
            [
                Segment(
                    name=name,
                    description=description,
                    definition=definition,
                )
                for name, description, definition in DEMO_SEGMENTS
            ],
            ignore_conflicts=True,
        )
        _demo_experiment(seed=seed, now=now)
        _demo_campaigns()

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


def _demo_experiment(*, seed: int, now: datetime) -> None:
    """A running experiment card on the next-course offer: 30 % off against the bonus only,
    with a 10 % holdout; every demo learner assigned three weeks ago."""
    discount = Offer.objects.get(name="Next course in the path")
    bonus = Offer.objects.create(
        name="Next course in the path (bonus only)",
        kind=discount.kind,
        outcome_gap=discount.outcome_gap,
        product=discount.product,
        incentive=Incentive.BONUS,
        bonus="The SQL cheat-sheet pack",
        cta_url=discount.cta_url,
        positioning=discount.positioning,
        moments=discount.moments,
    )
    experiment = Experiment.objects.create(
        name="Next course: 30% off or a bonus?",
        hypothesis="The next course, to learners who finished the one before, at completion, "
        "sells as well with a bonus as with 30% off — so the discount gives margin away.",
        variable="Incentive: 30% discount against a value-add bonus",
        primary_metric="revenue",
        target_product=discount.product,
        guardrails=["unsubscribe", "refund", "complaint"],
        holdout_definition="10% of completers get no offer, to measure what sells anyway.",
        holdout_percent=10,
        baseline_rate=Decimal("0.05"),
        minimum_detectable_effect=Decimal("0.03"),
        sample_size_per_arm=900,
        window_days=30,
        decision_rule="Roll out the bonus if its revenue per learner is not worse at p < 0.05 "
        "and no guardrail is worse; otherwise keep the discount.",
        status="running",
        started_at=now - timedelta(days=21),
        salt=f"demo-{seed}",
    )
    Arm.objects.bulk_create(
        [
            Arm(experiment=experiment, name="30% off", is_control=True, offer=discount),
            Arm(experiment=experiment, name="Bonus only", offer=bonus),
        ]
    )
    assign(experiment=experiment, learners=Learner.objects.all(), now=now - timedelta(days=21))


def _demo_campaigns() -> None:
    """The demo's campaigns: the experiment's cross-sell email, an in-app card after a strong
    assessment, the stall re-engagement email and the teams' usage band (active), and a
    renewal email still in draft, to preview."""
    moment = {m.slug: m for m in JourneyMoment.objects.all()}
    email = MessageTemplate.objects.get(name="Cross-sell: the next step")
    template_snapshot(template=email)
    renewal = MessageTemplate.objects.get(name="Renewal right-sizing")
    template_snapshot(template=renewal)
    card = MessageTemplate.objects.create(
        name="Next step card",
        channel="in_app",
        subject="Ready for {{ offer.product }}?",
        html_body="<p>{{ reason }}.</p><p>{{ offer.positioning }}</p>",
        text_body="{{ reason }}. {{ offer.positioning }}",
    )
    template_snapshot(template=card)
    offer = Offer.objects.get(name="Next course in the path")
    # The offer is SQL Intermediate: its campaigns are about SQL Basics (the course's creator
    # reviews them), so a Copywriting graduate is not offered the SQL path.
    sql_basics = Course.objects.get(title="SQL Basics")
    Campaign.objects.create(
        name="Graduates: the next course",
        course=sql_basics,
        description="Seed 000: cross-sell the next course 2–4 weeks after a completion.",
        moment=moment["course_completion"],
        trigger="cross_sell",
        email_template=email,
        offer=offer,
        experiment=Experiment.objects.get(name="Next course: 30% off or a bonus?"),
        priority=120,
        status="active",
        requires_creator_approval=False,
    )
    Campaign.objects.create(
        name="Strong assessment: next step card",
        course=sql_basics,
        moment=moment["milestone"],
        trigger="assessment_high",
        trigger_params={"min_score": 85},
        send_within_hours=24 * 7,
        in_app_template=card,
        offer=offer,
        status="active",
        requires_creator_approval=False,
    )
    # Seed 000's stall play: re-engagement (the upsell guardrails — at risk, low LPS — do not
    # stop it), at the "declining engagement" moment that is kept free of offers.
    stall = MessageTemplate.objects.get(name="Stall recovery: pick up where you left off")
    template_snapshot(template=stall)
    Campaign.objects.create(
        name="Stalled learners: pick up where you left off",
        description="Seed 000: was active weekly, silent for 10 days: pick up where you left "
        "off + here's what comes next.",
        moment=moment["at_risk"],
        trigger="stall",
        purpose="reengagement",
        category="learning",
        email_template=stall,
        offer=Offer.objects.get(name="Professional certificate"),
        send_within_hours=24 * 7,
        status="active",
        requires_creator_approval=False,
    )
    # Seed 004's usage band: a team at 70–85 % of its quota (one email per account, to the
    # roles that buy: admin and billing owner).
    usage = MessageTemplate.objects.get(name="Usage-based upsell (80/90/100%)")
    template_snapshot(template=usage)
    seats = Offer.objects.create(
        name="Room to grow: team seat pack",
        kind="upsell",
        product=Product.objects.get(sku="SEATS-5"),
        incentive="none",
        positioning="Add five seats and more room before your team hits the limit.",
        cta_url="https://learn.example.org/team/seats",
        valid_hours=24 * 7,
    )
    Campaign.objects.create(
        name="Teams at 70–85% of their quota",
        description="Seed 004: 70–85% of quota — upgrade before the wall.",
        moment=moment["milestone"],
        trigger="usage_threshold",
        trigger_params={"percent": 70, "upto": 85},
        target_roles=["admin", "billing_owner"],
        # The buyer's own course progress says nothing about the team's need (override).
        guardrails={"min_lps": 0},
        email_template=usage,
        offer=seats,
        send_within_hours=24 * 365,
        status="active",
        requires_creator_approval=False,
    )
    Campaign.objects.create(
        name="Renewal right-sizing",
        moment=moment["renewal"],
        trigger="renewal",
        email_template=renewal,
        # Right-sizing a plan, not a course cross-sell.
        offer=Offer.objects.get(name="Pro for heavy users"),
        status="draft",
        # About a subscription's renewal, not a course: no creator reviews it.
        requires_creator_approval=False,
    )


def _demo_mrr_moves(
    rng: random.Random, now: datetime, subscriptions: list[Subscription], plans: list[Product]
) -> None:
    """Some Basic members upgraded to Pro and some teams bought seats, with their ledger."""
    changes = []
    for sub in subscriptions:
        if sub.status != SubscriptionStatus.ACTIVE:
            continue
        holder = {"learner_id": sub.learner_id, "account_id": sub.account_id}
        if sub.plan_id == plans[0].pk and rng.random() < 0.3:
            moved = sub.started_at + (now - sub.started_at) * rng.uniform(0.2, 0.9)
            changes += [
                SubscriptionChange(
                    subscription=sub,
                    effective_at=sub.started_at,
                    mrr_before=0,
                    mrr_after=plans[0].price,
                    **holder,
                ),
                SubscriptionChange(
                    subscription=sub,
                    effective_at=moved,
                    mrr_before=plans[0].price,
                    mrr_after=plans[1].price,
                    expansion_type=ExpansionType.UPSELL,
                    **holder,
                ),
            ]
            sub.plan, sub.mrr = plans[1], plans[1].price
        elif sub.account_id and rng.random() < 0.4:
            moved = sub.started_at + (now - sub.started_at) * rng.uniform(0.3, 0.95)
            more = sub.mrr + Decimal("95.00")
            changes += [
                SubscriptionChange(
                    subscription=sub,
                    effective_at=sub.started_at,
                    mrr_before=0,
                    mrr_after=sub.mrr,
                    **holder,
                ),
                SubscriptionChange(
                    subscription=sub,
                    effective_at=moved,
                    mrr_before=sub.mrr,
                    mrr_after=more,
                    expansion_type=ExpansionType.SEAT_EXPANSION,
                    **holder,
                ),
            ]
            sub.mrr = more
            sub.seats_limit = (sub.seats_limit or 0) + 5
    Subscription.objects.bulk_update(
        [c.subscription for c in changes if c.expansion_type], ["plan", "mrr", "seats_limit"]
    )
    SubscriptionChange.objects.bulk_create(changes, batch_size=2000)


def _demo_offers(
    course_products: dict[int, Product], extras: list[Product], plans: list[Product]
) -> None:
    """The seeds' offers, one good-better-best ladder, one bundle and two add-ons."""
    by_sku = {p.sku: p for p in [*extras, *plans, *course_products.values()]}
    by_sku["TPL-1"].attaches_to = by_sku["COURSE-MARKETING-1"]
    by_sku["ADDON-AI"].attaches_to = by_sku["PLAN-PRO"]
    Product.objects.bulk_update([by_sku["TPL-1"], by_sku["ADDON-AI"]], ["attaches_to"])
    session = Offer.objects.create(
        name="1:1 strategy session (downsell)",
        kind=OfferKind.DOWNSELL,
        outcome_gap=OutcomeGap.SPEED,
        product=by_sku["SESSION-1"],
        cta_url="https://learn.example.org/session",
        positioning="One hour with a mentor to plan your next project.",
        moments=[Moment.COURSE_COMPLETION, Moment.POST_PURCHASE],
    )
    Offer.objects.bulk_create(
        [
            Offer(
                name="Implementation cohort for graduates",
                kind=OfferKind.CROSS_SELL,
                outcome_gap=OutcomeGap.IMPLEMENTATION,
                product=by_sku["COHORT-1"],
                incentive=Incentive.BONUS,
                bonus="A private review of your first project",
                cta_url="https://learn.example.org/cohort",
                positioning="You've learned the framework. Now let's apply it.",
                moments=[Moment.COURSE_COMPLETION],
                fallback=session,
            ),
            Offer(
                name="Next course in the path",
                kind=OfferKind.CROSS_SELL,
                outcome_gap=OutcomeGap.DEPTH,
                product=by_sku["COURSE-DATA-2"],
                incentive=Incentive.DISCOUNT,
                discount_percent=30,
                bonus="The SQL cheat-sheet pack",
                cta_url="https://learn.example.org/sql-intermediate",
                positioning="The next step after SQL Basics.",
                moments=[Moment.COURSE_COMPLETION, Moment.MILESTONE],
            ),
            Offer(
                name="Professional certificate",
                kind=OfferKind.UPSELL,
                outcome_gap=OutcomeGap.CREDENTIAL,
                product=by_sku["CERT-1"],
                cta_url="https://learn.example.org/certificate",
                positioning="Proof of what you can do, for your employer.",
                moments=[Moment.MILESTONE, Moment.COURSE_COMPLETION],
            ),
            Offer(
                name="Pro for heavy users",
                kind=OfferKind.UPSELL,
                product=by_sku["PLAN-PRO"],
                incentive=Incentive.DISCOUNT,
                discount_percent=20,
                valid_hours=72,
                cta_url="https://learn.example.org/pro",
                positioning="You've used 80% of your limit. Pro removes it.",
                moments=[Moment.MILESTONE, Moment.RENEWAL],
            ),
            Offer(
                name="Template pack order bump",
                kind=OfferKind.ORDER_BUMP,
                outcome_gap=OutcomeGap.SPEED,
                product=by_sku["TPL-1"],
                cta_url="https://learn.example.org/templates",
                positioning="Start from a finished example instead of a blank page.",
                moments=[Moment.CHECKOUT],
            ),
        ]
    )
    ladder = TierLadder.objects.create(
        name="Memberships", honest_comparison="Each tier adds real features; no decoy."
    )
    Tier.objects.bulk_create(
        [
            Tier(
                ladder=ladder,
                position=1,
                name="Basic",
                price=plans[0].price,
                audience="Learners taking one course at a time",
                product=plans[0],
                features=["All self-paced courses", "Community forum"],
            ),
            Tier(
                ladder=ladder,
                position=2,
                name="Pro",
                price=plans[1].price,
                audience="Learners building a career path",
                product=plans[1],
                features=[
                    "All self-paced courses",
                    "Community forum",
                    "Certificates",
                    "AI feedback on assignments",
                ],
            ),
            Tier(
                ladder=ladder,
                position=3,
                name="Team",
                price=plans[2].price,
                audience="Teams of 5 or more",
                product=plans[2],
                features=[
                    "All self-paced courses",
                    "Community forum",
                    "Certificates",
                    "AI feedback on assignments",
                    "Team dashboard",
                    "5 seats included",
                ],
            ),
        ]
    )
    bundle = Bundle.objects.create(
        name="Data career kit",
        price=Decimal("499.00"),
        margin_floor=Decimal("40.00"),
        question="What else do I need to get hired as an analyst?",
    )
    BundleItem.objects.bulk_create(
        [
            BundleItem(bundle=bundle, product=by_sku["COURSE-DATA-2"]),
            BundleItem(bundle=bundle, product=by_sku["COACH-1"]),
            BundleItem(bundle=bundle, product=by_sku["CERT-1"]),
        ]
    )
