"""Revenue metrics against hand-computed figures (see expansion/metrics.py for definitions)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from expansion.commerce.metrics import (
    ExpansionByType,
    Opportunity,
    expansion_by_type,
    period_starts,
    revenue_metrics,
    top_opportunities,
)
from expansion.commerce.models import ProductKind, SubscriptionChange
from expansion.commerce.sync import subscription_changes_backfill, subscriptions_upsert
from learners.models import EventKind
from tests.factories.expansion import (
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.factories.learners import AccountFactory, EventFactory, LearnerFactory

D = Decimal


def at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


@pytest.fixture
def shop(db):
    course = ProductFactory(sku="A", price=D("100.00"), unit_cost=D("20.00"))
    addon = ProductFactory(
        sku="T", kind=ProductKind.ADDON, price=D("30.00"), unit_cost=D("5.00"), attaches_to=course
    )
    ProductFactory(sku="BASIC", kind=ProductKind.PLAN, price=D("20.00"))
    ProductFactory(sku="PRO", kind=ProductKind.PLAN, price=D("50.00"))
    ProductFactory(sku="TEAM", kind=ProductKind.PLAN, price=D("100.00"))
    people = {n: LearnerFactory(external_id=n) for n in ("L1", "L2", "L3", "L4", "L5")}
    AccountFactory(external_id="A1", name="Acme")

    o1 = OrderFactory(learner=people["L1"], placed_at=at("2026-01-10"))
    OrderLineFactory(order=o1, product=course, unit_price=D("100.00"))
    OrderLineFactory(order=o1, product=addon, unit_price=D("30.00"))
    o2 = OrderFactory(learner=people["L2"], placed_at=at("2026-01-20"))
    OrderLineFactory(
        order=o2, product=course, quantity=2, unit_price=D("90.00"), refunded_amount=D("90.00")
    )
    o3 = OrderFactory(learner=people["L1"], placed_at=at("2026-02-05"))
    OrderLineFactory(order=o3, product=addon, quantity=2, unit_price=D("30.00"))
    o4 = OrderFactory(learner=people["L3"], placed_at=at("2026-02-10"))
    OrderLineFactory(order=o4, product=course, unit_price=D("100.00"), refunded_amount=D("100"))

    def sync(**item):
        result = subscriptions_upsert(items=[item])
        assert result.errors == [], result.errors

    base = {"status": "active", "mrr": "20.00", "plan": "BASIC"}
    sync(external_id="S1", learner="L4", started_at="2025-12-15T00:00:00Z", **base)
    sync(external_id="S2", learner="L5", started_at="2026-01-10T00:00:00Z", **base)
    sync(
        external_id="S3",
        account="A1",
        plan="TEAM",
        mrr="100.00",
        status="active",
        started_at="2025-11-01T00:00:00Z",
        seats_limit=5,
    )
    # Contraction: the team drops to 80 on 25 January.
    sync(
        external_id="S3",
        account="A1",
        plan="TEAM",
        mrr="80.00",
        status="active",
        started_at="2025-11-01T00:00:00Z",
        changed_at="2026-01-25T00:00:00Z",
    )
    # An upgrade mid-period: Basic → Pro on 14 February.
    sync(
        external_id="S2",
        learner="L5",
        plan="PRO",
        mrr="50.00",
        status="active",
        started_at="2026-01-10T00:00:00Z",
        changed_at="2026-02-14T00:00:00Z",
    )
    # Cancellation and reactivation in one period (March).
    sync(
        external_id="S1",
        learner="L4",
        plan="BASIC",
        mrr="20.00",
        status="cancelled",
        started_at="2025-12-15T00:00:00Z",
        cancelled_at="2026-03-03T00:00:00Z",
    )
    sync(
        external_id="S1",
        learner="L4",
        plan="BASIC",
        mrr="20.00",
        status="active",
        started_at="2025-12-15T00:00:00Z",
        cancelled_at=None,
        changed_at="2026-03-20T00:00:00Z",
    )
    return people


def test_the_ledger_holds_exactly_the_changes(shop):
    rows = list(
        SubscriptionChange.objects.order_by("effective_at", "id").values_list(
            "subscription__external_id", "effective_at", "mrr_before", "mrr_after", "expansion_type"
        )
    )
    assert rows == [
        ("S3", at("2025-11-01", "00:00:00"), D("0.00"), D("100.00"), ""),
        ("S1", at("2025-12-15", "00:00:00"), D("0.00"), D("20.00"), ""),
        ("S2", at("2026-01-10", "00:00:00"), D("0.00"), D("20.00"), ""),
        ("S3", at("2026-01-25", "00:00:00"), D("100.00"), D("80.00"), ""),
        ("S2", at("2026-02-14", "00:00:00"), D("20.00"), D("50.00"), "upsell"),
        ("S1", at("2026-03-03", "00:00:00"), D("20.00"), D("0.00"), ""),
        ("S1", at("2026-03-20", "00:00:00"), D("0.00"), D("20.00"), ""),
    ]


def test_replaying_a_subscription_batch_records_nothing(shop):
    before = SubscriptionChange.objects.count()
    result = subscriptions_upsert(
        items=[
            {
                "external_id": "S2",
                "learner": "L5",
                "plan": "PRO",
                "mrr": "50.00",
                "status": "active",
                "started_at": "2026-01-10T00:00:00Z",
            }
        ]
    )
    assert (result.created, result.updated, result.errors) == (0, 1, [])
    assert SubscriptionChange.objects.count() == before


def test_monthly_metrics_match_the_hand_computed_figures(shop):
    jan, feb, mar = revenue_metrics(period="month", first=date(2026, 1, 1), last=date(2026, 3, 31))

    assert (jan.period_start, jan.orders, jan.revenue, jan.aov) == (
        date(2026, 1, 1),
        2,
        D("220.00"),  # 100 + 30 + (2 × 90 − 90 refunded)
        D("110.00"),
    )
    assert jan.gross_margin == D("0.7045")  # (220 − 20 − 5 − 2 × 20) / 220
    assert (jan.expansion_revenue, jan.expansion_by_type) == (D("0.00"), {})
    assert jan.attach_rates == {"T": D("0.3333")}  # 1 add-on / 3 course units
    assert (jan.mrr_start, jan.mrr_new, jan.mrr_expansion, jan.mrr_contraction) == (
        D("120.00"),
        D("20.00"),
        D("0.00"),
        D("20.00"),
    )
    assert (jan.mrr_churn, jan.mrr_reactivation, jan.mrr_end) == (D("0"), D("0"), D("120.00"))
    assert (jan.nrr, jan.grr) == (D("0.8333"), D("0.8333"))

    assert (feb.orders, feb.revenue, feb.aov, feb.gross_margin) == (
        2,
        D("60.00"),  # 2 × 30, and a fully refunded course
        D("30.00"),
        D("0.5000"),  # (60 − 2 × 5 − 20) / 60: the refunded course's cost stays
    )
    assert (feb.expansion_revenue, feb.expansion_by_type) == (D("60.00"), {"add_on": D("60.00")})
    assert feb.attach_rates == {"T": None}  # no course unit that was not refunded
    assert (feb.mrr_start, feb.mrr_expansion, feb.mrr_end) == (D("120.00"), D("30.00"), D("150"))
    assert feb.mrr_expansion_by_type == {"upsell": D("30.00")}
    assert (feb.nrr, feb.grr) == (D("1.2500"), D("1.0000"))

    assert (mar.orders, mar.revenue, mar.aov, mar.gross_margin) == (0, D("0.00"), None, None)
    assert mar.attach_rates == {"T": None}
    assert (mar.mrr_start, mar.mrr_churn, mar.mrr_reactivation, mar.mrr_new) == (
        D("150.00"),
        D("20.00"),
        D("20.00"),
        D("0.00"),
    )
    # L4 paid on 1 March and again at its end: NRR counts the comeback, GRR only the loss.
    assert (mar.mrr_end, mar.nrr, mar.grr) == (D("150.00"), D("1.0000"), D("0.8667"))


def test_periods_split_at_utc_midnight_and_monday(shop):
    OrderLineFactory(
        order=OrderFactory(learner=shop["L2"], placed_at=at("2026-01-31", "23:59:59")),
        product__sku="LATE",
        unit_price=D("7.00"),
    )
    OrderLineFactory(
        order=OrderFactory(learner=shop["L2"], placed_at=at("2026-02-01", "00:00:00")),
        product__sku="EARLY",
        unit_price=D("11.00"),
    )
    days = revenue_metrics(period="day", first=date(2026, 1, 31), last=date(2026, 2, 1))
    assert [(d.period_start, d.orders, d.revenue) for d in days] == [
        (date(2026, 1, 31), 1, D("7.00")),
        (date(2026, 2, 1), 1, D("11.00")),
    ]
    weeks = revenue_metrics(period="week", first=date(2026, 2, 1), last=date(2026, 2, 15))
    # 2026-02-01 is a Sunday: its week starts on Monday 26 January.
    assert [w.period_start for w in weeks] == [
        date(2026, 1, 26),
        date(2026, 2, 2),
        date(2026, 2, 9),
    ]
    assert [(w.orders, w.revenue, w.mrr_expansion) for w in weeks] == [
        (2, D("18.00"), D("0.00")),
        (1, D("60.00"), D("0.00")),
        (1, D("0.00"), D("30.00")),  # the refunded course; the upgrade on Saturday the 14th
    ]


def test_no_data_gives_zeros_and_no_ratios(db):
    (row,) = revenue_metrics(period="month", first=date(2026, 5, 1), last=date(2026, 5, 31))
    assert (row.orders, row.revenue, row.aov, row.gross_margin) == (0, D("0.00"), None, None)
    assert (row.mrr_start, row.mrr_end, row.nrr, row.grr) == (D("0.00"), D("0.00"), None, None)
    assert (row.expansion_by_type, row.attach_rates) == ({}, {})


def test_new_versus_reactivation_is_per_customer_not_per_subscription(db):
    ProductFactory(sku="BASIC", kind=ProductKind.PLAN, price=D("20.00"))
    LearnerFactory(external_id="L9")
    common = {"learner": "L9", "plan": "BASIC", "mrr": "20.00"}
    subscriptions_upsert(
        items=[
            {
                "external_id": "first",
                "status": "cancelled",
                "started_at": "2026-01-05T00:00:00Z",
                "cancelled_at": "2026-01-20T00:00:00Z",
                **common,
            },
            {"external_id": "second", "status": "active", "started_at": "2026-02-03T00:00:00Z"}
            | common,
        ]
    )
    jan, feb = revenue_metrics(period="month", first=date(2026, 1, 1), last=date(2026, 2, 28))
    assert (jan.mrr_new, jan.mrr_churn, jan.mrr_end) == (D("20.00"), D("20.00"), D("0.00"))
    # A new subscription of a customer who paid before is a reactivation, not new business.
    assert (feb.mrr_new, feb.mrr_reactivation, feb.mrr_end) == (D("0.00"), D("20.00"), D("20"))


def test_a_holder_switch_moves_mrr_between_customers(db):
    ProductFactory(sku="TEAM", kind=ProductKind.PLAN)
    LearnerFactory(external_id="owner")
    AccountFactory(external_id="acct")
    item = {"external_id": "S", "plan": "TEAM", "mrr": "60.00", "status": "active"}
    subscriptions_upsert(items=[item | {"learner": "owner", "started_at": "2026-01-01T00:00:00Z"}])
    subscriptions_upsert(
        items=[
            item
            | {
                "account": "acct",
                "started_at": "2026-01-01T00:00:00Z",
                "changed_at": "2026-01-15T00:00:00Z",
            }
        ]
    )
    changes = list(
        SubscriptionChange.objects.order_by("id").values_list(
            "learner__external_id", "account__external_id", "mrr_before", "mrr_after"
        )
    )
    assert changes == [
        ("owner", None, D("0.00"), D("60.00")),
        ("owner", None, D("60.00"), D("0.00")),
        (None, "acct", D("0.00"), D("60.00")),
    ]


def test_backfill_opens_the_ledger_once(db):
    SubscriptionFactory(external_id="old", mrr=D("29.00"), started_at=at("2025-06-01"))
    SubscriptionFactory(
        external_id="gone",
        mrr=D("10.00"),
        status="cancelled",
        started_at=at("2025-06-01"),
        cancelled_at=at("2025-07-01"),
    )
    SubscriptionFactory(external_id="trial", mrr=D("10.00"), status="trialing")
    assert subscription_changes_backfill() == 3
    assert subscription_changes_backfill() == 0
    (row,) = revenue_metrics(period="month", first=date(2025, 7, 1), last=date(2025, 7, 31))
    assert (row.mrr_start, row.mrr_churn, row.mrr_end) == (D("39.00"), D("10.00"), D("29.00"))


def test_expansion_by_type_and_top_opportunities(shop):
    assert expansion_by_type(first=date(2026, 1, 1), last=date(2026, 3, 31)) == [
        ExpansionByType("upsell", True, D("30.00"), 1),
        ExpansionByType("add_on", False, D("60.00"), 1),
    ]
    team = SubscriptionFactory(
        external_id="big",
        account=AccountFactory(name="Globex"),
        learner=None,
        mrr=D("300.00"),
        quota_used=90,
        quota_limit=100,
        seats_used=4,
        seats_limit=5,
    )
    SubscriptionFactory(
        mrr=D("500.00"), quota_used=79, quota_limit=100, seats_used=3, seats_limit=5
    )
    now = at("2026-03-31")
    for day in ("2026-03-02", "2026-03-20", "2026-03-30"):
        EventFactory(
            learner=shop["L5"], kind=EventKind.PREMIUM_FEATURE_ATTEMPTED, occurred_at=at(day)
        )
    EventFactory(
        learner=shop["L1"], kind=EventKind.PREMIUM_FEATURE_ATTEMPTED, occurred_at=at("2026-03-29")
    )
    assert top_opportunities(now=now) == [
        Opportunity("Globex", D("300.00"), f"Upgrade from {team.plan.name}", "90% of quota"),
        Opportunity("Globex", D("300.00"), "Add seats", "4 of 5 seats"),
        Opportunity(
            shop["L5"].name or "L5",
            D("50.00"),
            "Premium tier or add-on",
            "3 premium-feature attempts in 30 days",
        ),
    ]


def test_period_starts_refuses_bad_ranges():
    with pytest.raises(ValueError, match="period must be one of day, week, month"):
        period_starts("year", date(2026, 1, 1), date(2026, 2, 1))
    with pytest.raises(ValueError, match="the end is before the start"):
        period_starts("day", date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(ValueError, match="at most 400 periods"):
        period_starts("day", date(2020, 1, 1), date(2026, 1, 1))
    assert period_starts("month", date(2026, 1, 31), date(2026, 3, 1)) == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    assert at("2026-01-01").tzinfo is UTC
