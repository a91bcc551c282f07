"""The demo's offers and pricing: the seeds' offers, a good-better-best ladder, a bundle and
two add-ons attached to their products."""

from __future__ import annotations

from decimal import Decimal

from expansion.commerce.models import (
    Bundle,
    BundleItem,
    Incentive,
    Moment,
    Offer,
    OfferKind,
    OutcomeGap,
    Product,
    Tier,
    TierLadder,
)


def demo_offers(
    *, course_products: dict[int, Product], extras: list[Product], plans: list[Product]
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
