"""Tier ladders, bundles and offers: the checks, the figures, the admin refusing bad ones."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from expansion.commerce.admin.affinity import ProductAffinityAdmin
from expansion.commerce.models import (
    Bundle,
    CommerceSettings,
    Offer,
    PairReview,
    ProductAffinity,
    Tier,
    TierLadder,
)
from expansion.commerce.pricing import (
    BundleLine,
    TierDraft,
    bundle_figures,
    discount_guarded,
    features_clean,
    ladder_check,
    offer_check,
    offer_terms,
    offers_terms,
)
from tests.factories.expansion import (
    BundleFactory,
    OfferFactory,
    OrderFactory,
    OrderLineFactory,
    ProductAffinityFactory,
    ProductFactory,
    TierFactory,
)
from tests.factories.learners import LearnerFactory, UserFactory
from tests.helpers import refused

D = Decimal
GOOD = [
    TierDraft(1, "Basic", D("19"), ("Courses",)),
    TierDraft(2, "Pro", D("39"), ("Courses", "Certificates")),
    TierDraft(3, "Team", D("99"), ("Courses", "Certificates", "Seats")),
]


def test_an_honest_ladder_passes():
    check = ladder_check(tiers=GOOD, intended_winner=2, anchor_position=3)
    assert (check.errors, check.warnings) == ([], [])


def test_a_fake_decoy_is_refused():
    decoy = [GOOD[0], TierDraft(2, "Pro", D("39"), ("Courses",)), GOOD[2]]
    check = ladder_check(tiers=decoy, intended_winner=2, anchor_position=3)
    assert check.errors == [
        "Pro has the same features as Basic for more: a fake decoy.",
        "Pro is dominated by Basic (as much or more for less): nobody could rationally buy it.",
    ]


def test_prices_must_rise_with_features():
    cheap_top = [GOOD[0], GOOD[1], TierDraft(3, "Team", D("39"), GOOD[2].features)]
    check = ladder_check(tiers=cheap_top, intended_winner=2, anchor_position=3)
    assert check.errors == [
        "Team (39) must cost more than Pro (39): prices rise with features.",
        "Pro is dominated by Team (as much or more for less): nobody could rationally buy it.",
    ]


def test_a_higher_tier_may_not_drop_a_feature():
    dropped = [GOOD[0], GOOD[1], TierDraft(3, "Team", D("99"), ("Courses", "Seats"))]
    check = ladder_check(tiers=dropped, intended_winner=2, anchor_position=3)
    assert check.errors == [
        "Team drops 'Certificates' that Pro has: each tier includes everything below it."
    ]


def test_three_tiers_exactly_and_warnings_for_a_weak_middle():
    assert ladder_check(tiers=GOOD[:2], intended_winner=2, anchor_position=3).errors == [
        "A ladder has exactly three tiers: 1 (good), 2 (better), 3 (best)."
    ]
    check = ladder_check(tiers=GOOD, intended_winner=3, anchor_position=1)
    assert check.errors == []
    assert check.warnings == [
        "The intended winner is tier 3, not the middle: good-better-best works by making the "
        "middle the sensible choice.",
        "The anchor is not the top tier: leading with the highest tier is what makes the "
        "middle look sensible.",
    ]


def test_features_are_cleaned_from_text():
    assert features_clean(" Courses \n\nCertificates\nCourses\n") == ("Courses", "Certificates")
    assert features_clean(["a", " ", "b"]) == ("a", "b")


def test_bundle_figures_by_hand():
    lines = [
        BundleLine("Course", 1, D("149.00"), D("10.00")),
        BundleLine("Coaching", 1, D("390.00"), D("120.00")),
        BundleLine("Certificate", 2, D("49.00"), D("15.00")),
    ]
    figures = bundle_figures(lines=lines, price=D("499.00"), margin_floor=D("40"))
    assert figures.sum_of_parts == D("637.00")  # 149 + 390 + 2 × 49
    assert (figures.saving, figures.saving_percent) == (D("138.00"), D("21.66"))
    assert figures.cost == D("160.00")  # 10 + 120 + 2 × 15
    assert figures.margin_percent == D("67.94")  # (499 − 160) / 499
    assert (figures.below_floor, figures.unknown_costs) == (False, ())

    low = bundle_figures(lines=lines, price=D("250.00"), margin_floor=D("40"))
    assert (low.margin_percent, low.below_floor) == (D("36.00"), True)
    unknown = bundle_figures(
        lines=[*lines, BundleLine("Mystery", 1, D("5"), None)], price=D("499"), margin_floor=D(40)
    )
    assert (unknown.margin_percent, unknown.unknown_costs) == (None, ("Mystery",))


def test_offer_incentive_rules(db):
    policy = CommerceSettings.load()
    assert offer_check(incentive="discount", discount_percent=30, bonus="", policy=policy) == []
    assert offer_check(incentive="discount", discount_percent=31, bonus="", policy=policy) == [
        "31% is above the 30% ceiling (Commerce settings): habitual discounting trains "
        "customers to wait."
    ]
    assert offer_check(incentive="discount", discount_percent=None, bonus="", policy=policy) == [
        "A percentage discount needs its percent."
    ]
    assert offer_check(incentive="none", discount_percent=10, bonus="", policy=policy) == [
        "Only a percentage discount takes a percent."
    ]
    assert offer_check(incentive="bonus", discount_percent=None, bonus=" ", policy=policy) == [
        "Name the value-add bonus."
    ]


def test_offer_constraints_hold_in_the_database(db):
    assert refused(OfferFactory, incentive="discount", discount_percent=None)
    assert refused(OfferFactory, incentive="none", discount_percent=10)
    assert refused(OfferFactory, incentive="bonus", bonus="")
    assert refused(OfferFactory, valid_hours=0)
    assert refused(TierFactory, position=4)
    assert refused(BundleFactory, price=D("0"))
    assert not refused(OfferFactory, incentive="discount", discount_percent=20)


def test_offer_terms_apply_the_habitual_discount_guard(db):
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    product = ProductFactory(price=D("200.00"))
    offer = OfferFactory(
        product=product, incentive="discount", discount_percent=25, bonus="A review call"
    )
    learner = LearnerFactory()
    terms = offer_terms(offer=offer, learner_id=learner.pk, now=now)
    assert (terms.price, terms.saving, terms.discount_percent, terms.bonus) == (
        D("150.00"),
        D("50.00"),
        25,
        "",
    )
    assert (terms.expires_at, terms.guard_applied) == (now + timedelta(hours=48), False)

    bought = ProductFactory(price=D("100.00"))
    order = OrderFactory(learner=learner, placed_at=now - timedelta(days=89))
    OrderLineFactory(order=order, product=bought, unit_price=D("70.00"))  # bought at a discount
    terms = offer_terms(offer=offer, learner_id=learner.pk, now=now)
    assert (terms.price, terms.discount_percent, terms.bonus, terms.guard_applied) == (
        D("200.00"),
        0,
        "A review call",
        True,
    )
    # 91 days later the discount is back.
    later = offer_terms(offer=offer, learner_id=learner.pk, now=now + timedelta(days=2))
    assert (later.price, later.guard_applied) == (D("150.00"), False)


def test_offers_terms_price_many_learners_with_one_guard_query(db, django_assert_num_queries):
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    policy = CommerceSettings.load()
    discount = OfferFactory(
        product=ProductFactory(price=D("200.00")),
        incentive="discount",
        discount_percent=25,
        bonus="A review call",
    )
    plain = OfferFactory(product=ProductFactory(price=D("49.00")))
    learners = LearnerFactory.create_batch(30)
    for learner in learners[::3]:  # every third bought at a discount 10 days ago
        order = OrderFactory(learner=learner, placed_at=now - timedelta(days=10))
        OrderLineFactory(order=order, unit_price=D("1.00"))
    pairs = [(discount if i % 2 == 0 else plain, p.pk) for i, p in enumerate(learners)]

    with django_assert_num_queries(1):
        batched = offers_terms(pairs=pairs, now=now, policy=policy)
    with django_assert_num_queries(2):  # the settings too
        assert offers_terms(pairs=pairs[:3], now=now) == batched[:3]

    assert batched == [offer_terms(offer=o, learner_id=pk, now=now) for o, pk in pairs]
    assert [(t.price, t.guard_applied) for t in batched[:4]] == [
        (D("200.00"), True),
        (D("49.00"), False),
        (D("150.00"), False),
        (D("49.00"), False),  # guarded, but nothing to hold back
    ]
    assert discount_guarded(learner_ids=[p.pk for p in learners], now=now, policy=policy) == {
        p.pk for p in learners[::3]
    }
    with django_assert_num_queries(0):  # no discount among them: no guard query
        offers_terms(pairs=[(plain, learners[0].pk)], now=now)
    # The caller who knows the guard's answer costs no query.
    with django_assert_num_queries(0):
        known = offer_terms(offer=discount, learner_id=learners[1].pk, now=now, guard=True)
    assert (known.price, known.bonus, known.guard_applied) == (D("200.00"), "A review call", True)


@pytest.fixture
def marketer(client, db):
    client.force_login(UserFactory(username="marketer", is_staff=True, is_superuser=True))
    return client


def ladder_post(features_middle: str, price_middle: str = "39.00") -> dict:
    data = {
        "name": "Memberships",
        "anchor_position": "3",
        "intended_winner": "2",
        "expected_share": "60",
        "honest_comparison": "",
        "tiers-TOTAL_FORMS": "3",
        "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "3",
    }
    rows = [
        ("1", "Basic", "19.00", "Courses"),
        ("2", "Pro", price_middle, features_middle),
        ("3", "Team", "99.00", "Courses\nCertificates\nSeats"),
    ]
    for index, (position, name, price, features) in enumerate(rows):
        data |= {
            f"tiers-{index}-position": position,
            f"tiers-{index}-name": name,
            f"tiers-{index}-price": price,
            f"tiers-{index}-audience": "Someone",
            f"tiers-{index}-features": features,
        }
    return data


def test_admin_refuses_a_decoy_ladder_and_saves_an_honest_one(marketer):
    response = marketer.post("/admin/expansion/tierladder/add/", ladder_post("Courses"))
    assert response.status_code == 200
    assert "Pro has the same features as Basic for more: a fake decoy." in response.content.decode()
    assert TierLadder.objects.count() == 0
    assert Tier.objects.count() == 0

    response = marketer.post(
        "/admin/expansion/tierladder/add/", ladder_post("Courses\nCertificates")
    )
    assert response.status_code == 302
    ladder = TierLadder.objects.get()
    assert list(ladder.tiers.values_list("name", "features")) == [
        ("Basic", ["Courses"]),
        ("Pro", ["Courses", "Certificates"]),
        ("Team", ["Courses", "Certificates", "Seats"]),
    ]
    page = marketer.get(f"/admin/expansion/tierladder/{ladder.pk}/preview/").content.decode()
    assert "Most popular" in page
    assert page.count('class="tier') == 3


def bundle_post(price: str, products) -> dict:
    data = {
        "name": "Kit",
        "question": "",
        "price": price,
        "margin_floor": "40.00",
        "is_active": "on",
        "items-TOTAL_FORMS": str(len(products)),
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "1000",
    }
    for index, product in enumerate(products):
        data |= {f"items-{index}-product": str(product.pk), f"items-{index}-quantity": "1"}
    return data


def test_admin_refuses_a_bundle_below_its_margin_floor_or_without_saving(marketer):
    a = ProductFactory(price=D("100.00"), unit_cost=D("50.00"))
    b = ProductFactory(price=D("100.00"), unit_cost=D("50.00"))
    response = marketer.post("/admin/expansion/bundle/add/", bundle_post("150.00", [a, b]))
    assert "Blended gross margin 33.33% at 150.00 is below the 40.00% floor." in (
        response.content.decode()
    )
    response = marketer.post("/admin/expansion/bundle/add/", bundle_post("200.00", [a, b]))
    assert "shows no saving on the parts (200.00)" in response.content.decode()
    assert Bundle.objects.count() == 0

    ProductAffinityFactory(product=a, other=b, lift=2.5, orders_both=12)
    response = marketer.post("/admin/expansion/bundle/add/", bundle_post("180.00", [a, b]))
    assert response.status_code == 302
    bundle = Bundle.objects.get()
    page = marketer.get(f"/admin/expansion/bundle/{bundle.pk}/change/").content.decode()
    assert "20.00 (10.00%)" in page  # displayed saving
    assert "44.44% (floor 40.00%)" in page  # (180 − 100) / 180
    assert "lift 2.50 (12 orders together)" in page


def test_admin_refuses_a_discount_above_the_ceiling(marketer):
    product = ProductFactory()
    data = {
        "name": "Too generous",
        "kind": "upsell",
        "outcome_gap": "depth",
        "product": str(product.pk),
        "is_active": "on",
        "incentive": "discount",
        "discount_percent": "50",
        "bonus": "",
        "positioning": "Go deeper.",
        "cta_url": "https://learn.example.org/x",
        "valid_hours": "48",
        "moments": ["course_completion"],
    }
    response = marketer.post("/admin/expansion/offer/add/", data)
    assert "50% is above the 30% ceiling" in response.content.decode()
    assert Offer.objects.count() == 0
    response = marketer.post("/admin/expansion/offer/add/", data | {"discount_percent": "30"})
    assert response.status_code == 302
    assert Offer.objects.get().moments == ["course_completion"]


def test_affinity_admin_refresh_and_block(marketer):
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    learner = LearnerFactory()
    for _ in range(5):
        order = OrderFactory(learner=learner, placed_at=datetime.now(UTC) - timedelta(days=1))
        OrderLineFactory(order=order, product=a)
        OrderLineFactory(order=order, product=b)
    other = OrderFactory(learner=learner, placed_at=datetime.now(UTC) - timedelta(days=1))
    OrderLineFactory(order=other, product=ProductFactory(sku="C"))
    assert marketer.get("/admin/expansion/productaffinity/refresh/").status_code == 405
    response = marketer.post("/admin/expansion/productaffinity/refresh/", follow=True)
    assert "Affinity refreshed: 2 pairs from 6 orders." in response.content.decode()
    page = marketer.get("/admin/expansion/productaffinity/").content.decode()
    assert page.count("✓ may recommend") == 2  # lift = 5 × 6 / (5 × 5) = 1.2, 5 orders
    a_to_b = ProductAffinity.objects.get(product=a, other=b)
    marketer.post(
        "/admin/expansion/productaffinity/",
        {"action": "block_pairs", "_selected_action": [str(a_to_b.pk)]},
    )
    assert PairReview.objects.get().blocked is True
    page = marketer.get("/admin/expansion/productaffinity/").content.decode()
    assert page.count("✓ may recommend") == 1
    assert "blocked by review" in page


def test_revenue_dashboard_and_metrics_api(marketer, read_api):
    assert marketer.get("/admin/expansion/order/revenue/").status_code == 200
    response = read_api.get("/api/v1/metrics/?period=week&start=2026-01-05&end=2026-01-18")
    assert response.status_code == 200
    body = response.json()
    assert (body["period"], body["start"], body["end"], body["currency"]) == (
        "week",
        "2026-01-05",
        "2026-01-18",
        "USD",
    )
    assert [r["period_start"] for r in body["results"]] == ["2026-01-05", "2026-01-12"]
    assert (body["results"][0]["revenue"], body["results"][0]["nrr"]) == ("0.00", None)

    bad = read_api.get("/api/v1/metrics/?period=year")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "period"
    backwards = read_api.get("/api/v1/metrics/?start=2026-02-01&end=2026-01-01")
    assert backwards.json() == {
        "errors": [{"index": None, "field": "start", "reason": "is after end"}]
    }
    too_many = read_api.get("/api/v1/metrics/?period=day&start=2020-01-01&end=2026-01-01")
    assert too_many.json()["errors"][0]["field"] == "start"
    # Found by the schema fuzzer: a year-1 end underflowed the default window (a 500).
    for query, field in (("end=0001-01-01&period=day", "end"), ("start=9999-12-31", "start")):
        extreme = read_api.get(f"/api/v1/metrics/?{query}")
        reason = "must be from 1900-01-01 to 2999-12-31"
        assert (extreme.status_code, extreme.json()) == (
            400,
            {"errors": [{"index": None, "field": field, "reason": reason}]},
        )


def test_the_affinity_list_shows_lift_and_the_gate_right_after_the_pair(marketer):
    assert ProductAffinityAdmin.list_display[:4] == ["product", "other", "lift_text", "gate"]
    page = marketer.get("/admin/expansion/productaffinity/").content.decode()
    # The ethics-gate paragraph comes after the object tools (the Refresh button), not
    # between the title and them, where the floated button covered its text.
    assert page.index('class="object-tools"') < page.index("Recommendation ethics gate")
