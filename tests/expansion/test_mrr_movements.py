"""MRR movements per customer, NRR/GRR over the customers of the period start, and the
dashboard's "By type" table against hand-computed figures (issue 17, items 9 and 10)."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from expansion.commerce.admin import revenue_dashboard_context
from expansion.commerce.metrics import ExpansionByType, expansion_by_type, revenue_metrics
from expansion.commerce.models import ExpansionType, ProductKind
from expansion.commerce.sync import subscriptions_upsert
from tests.factories.expansion import (
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    SubscriptionChangeFactory,
    SubscriptionFactory,
)
from tests.factories.learners import AccountFactory, LearnerFactory

D = Decimal


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


def ledger(sub, *steps) -> None:
    """``steps``: (day, mrr before, mrr after[, expansion type]) for one subscription."""
    for day, before, after, *kind in steps:
        SubscriptionChangeFactory(
            subscription=sub,
            effective_at=at(day),
            mrr_before=D(before),
            mrr_after=D(after),
            expansion_type=kind[0] if kind else "",
        )


@pytest.fixture
def plans(db):
    return {
        "basic": ProductFactory(sku="BASIC", kind=ProductKind.PLAN, price=D("50.00")),
        "pro": ProductFactory(sku="PRO", kind=ProductKind.PLAN, price=D("100.00")),
        "team": ProductFactory(sku="TEAM", kind=ProductKind.PLAN, price=D("60.00")),
        "addon": ProductFactory(sku="EXTRA", kind=ProductKind.ADDON, price=D("20.00")),
    }


def test_nrr_and_grr_leave_out_customers_who_were_not_paying_at_the_period_start(plans):
    plan = plans["basic"]
    # Paying on 1 September: A 40 and B 30 (start MRR 70); B churns on 12 September.
    ledger(SubscriptionFactory(plan=plan), ("2025-08-01", "0", "40"))
    ledger(SubscriptionFactory(plan=plan), ("2025-08-10", "0", "30"), ("2025-09-12", "30", "0"))
    # C starts on 5 September and adds seats on the 20th: new business, then its own expansion.
    ledger(
        SubscriptionFactory(plan=plan),
        ("2025-09-05", "0", "24"),
        ("2025-09-20", "24", "30", ExpansionType.SEAT_EXPANSION),
    )
    # D starts on 3 October and churns on the 25th.
    ledger(SubscriptionFactory(plan=plan), ("2025-10-03", "0", "25"), ("2025-10-25", "25", "0"))

    sep, oct_ = revenue_metrics(period="month", first=date(2025, 9, 1), last=date(2025, 10, 31))

    # The movements themselves still count every customer.
    assert (sep.mrr_start, sep.mrr_new, sep.mrr_expansion, sep.mrr_churn, sep.mrr_end) == (
        D("70.00"),
        D("24.00"),
        D("6.00"),
        D("30.00"),
        D("70.00"),
    )
    # (70 − 30) / 70, not (70 + 6 − 30) / 70 = 0.6571: C was not paying on 1 September.
    assert (sep.nrr, sep.grr) == (D("0.5714"), D("0.5714"))
    assert (oct_.mrr_start, oct_.mrr_new, oct_.mrr_churn, oct_.mrr_end) == (
        D("70.00"),
        D("25.00"),
        D("25.00"),
        D("70.00"),
    )
    # 70 / 70, not (70 − 25) / 70 = 0.6429: D's churn is not a loss of the October start MRR.
    assert (oct_.nrr, oct_.grr) == (D("1.0000"), D("1.0000"))


def test_nrr_counts_the_comeback_of_a_customer_who_paid_at_the_start(plans):
    ledger(SubscriptionFactory(plan=plans["basic"]), ("2025-08-01", "0", "60"))
    comeback = SubscriptionFactory(plan=plans["basic"])
    ledger(
        comeback, ("2025-08-01", "0", "40"), ("2025-09-03", "40", "0"), ("2025-09-20", "0", "40")
    )

    (sep,) = revenue_metrics(period="month", first=date(2025, 9, 1), last=date(2025, 9, 30))

    assert (sep.mrr_churn, sep.mrr_reactivation, sep.mrr_end) == (D("40"), D("40"), D("100"))
    # The customers of 1 September end it with all of their 100; the churn still costs GRR.
    assert (sep.nrr, sep.grr) == (D("1.0000"), D("0.6000"))


@pytest.fixture
def november(plans):
    """Expansion MRR of 120 in November 2025, three ways (hand-computed):

    - L-up cancels Basic 50 and starts Pro 100 at the same moment: one upgrade, +50;
    - Acme's team plan goes from 60 to 90 with more seats: +30;
    - L-price's Basic goes from 40 to 80 (a price change): +40.
    """
    upgrader = LearnerFactory(external_id="L-up")
    ledger(
        SubscriptionFactory(learner=upgrader, plan=plans["basic"], mrr=D("50.00")),
        ("2025-10-01", "0", "50"),
        ("2025-11-10", "50", "0"),
    )
    ledger(
        SubscriptionFactory(learner=upgrader, plan=plans["pro"], mrr=D("100.00")),
        ("2025-11-10", "0", "100"),
    )
    acme = AccountFactory(external_id="acme")
    ledger(
        SubscriptionFactory(learner=None, account=acme, plan=plans["team"], mrr=D("90.00")),
        ("2025-10-01", "0", "60"),
        ("2025-11-15", "60", "90", ExpansionType.SEAT_EXPANSION),
    )
    ledger(
        SubscriptionFactory(plan=plans["basic"], mrr=D("80.00")),
        ("2025-10-01", "0", "40"),
        ("2025-11-20", "40", "80", ExpansionType.USAGE),
    )
    return upgrader


def test_an_upgrade_through_a_second_subscription_is_one_upsell(november):
    (nov,) = revenue_metrics(period="month", first=date(2025, 11, 1), last=date(2025, 11, 30))

    assert (nov.mrr_start, nov.mrr_new, nov.mrr_churn, nov.mrr_contraction) == (
        D("150.00"),
        D("0.00"),
        D("0.00"),
        D("0.00"),
    )
    assert (nov.mrr_expansion, nov.mrr_end) == (D("120.00"), D("270.00"))
    assert nov.mrr_expansion_by_type == {
        "upsell": D("50.00"),
        "seat_expansion": D("30.00"),
        "usage": D("40.00"),
    }
    assert (nov.nrr, nov.grr) == (D("1.8000"), D("1.0000"))


def test_by_type_sums_to_expansion_mrr(november):
    rows = expansion_by_type(first=date(2025, 11, 1), last=date(2025, 11, 30))

    assert rows == [
        ExpansionByType("seat_expansion", True, D("30.00"), 1),
        ExpansionByType("upsell", True, D("50.00"), 1),
        ExpansionByType("usage", True, D("40.00"), 1),
    ]
    context = revenue_dashboard_context(period="month", today=date(2025, 11, 30))
    assert context["current"].mrr_expansion == D("120.00")
    assert sum(row.amount for row in context["by_type"] if row.recurring) == D("120.00")
    assert context["by_type_mrr"] == D("120.00")


def test_the_sync_s_cancel_and_start_at_one_moment_is_an_upsell(plans):
    LearnerFactory(external_id="L7")
    common = {"learner": "L7", "started_at": "2025-10-01T00:00:00Z"}
    result = subscriptions_upsert(
        items=[{"external_id": "B", "plan": "BASIC", "mrr": "50.00", "status": "active"} | common]
    )
    assert result.errors == []
    result = subscriptions_upsert(
        items=[
            {
                "external_id": "B",
                "plan": "BASIC",
                "mrr": "50.00",
                "status": "cancelled",
                "cancelled_at": "2025-11-10T09:30:00Z",
            }
            | common,
            {
                "external_id": "P",
                "learner": "L7",
                "plan": "PRO",
                "mrr": "100.00",
                "status": "active",
                "started_at": "2025-11-10T09:30:00Z",
            },
        ]
    )
    assert result.errors == []

    (nov,) = revenue_metrics(period="month", first=date(2025, 11, 1), last=date(2025, 11, 30))
    assert (nov.mrr_expansion, nov.mrr_churn, nov.mrr_new) == (D("50.00"), D("0"), D("0"))
    assert nov.mrr_expansion_by_type == {"upsell": D("50.00")}
    assert expansion_by_type(first=date(2025, 11, 1), last=date(2025, 11, 30)) == [
        ExpansionByType("upsell", True, D("50.00"), 1)
    ]


def test_an_add_on_subscription_of_a_paying_customer_is_add_on_expansion(plans):
    learner = LearnerFactory()
    ledger(SubscriptionFactory(learner=learner, plan=plans["basic"]), ("2025-10-01", "0", "50"))
    ledger(SubscriptionFactory(learner=learner, plan=plans["addon"]), ("2025-11-04", "0", "20"))
    # A first-time customer taking a plan and the add-on together is new business, not expansion.
    newcomer = LearnerFactory()
    ledger(SubscriptionFactory(learner=newcomer, plan=plans["basic"]), ("2025-11-06", "0", "50"))
    ledger(SubscriptionFactory(learner=newcomer, plan=plans["addon"]), ("2025-11-06", "0", "20"))

    (nov,) = revenue_metrics(period="month", first=date(2025, 11, 1), last=date(2025, 11, 30))
    assert (nov.mrr_new, nov.mrr_expansion) == (D("70.00"), D("20.00"))
    assert nov.mrr_expansion_by_type == {"add_on": D("20.00")}
    assert expansion_by_type(first=date(2025, 11, 1), last=date(2025, 11, 30)) == [
        ExpansionByType("add_on", True, D("20.00"), 1)
    ]


def test_a_fully_refunded_add_on_does_not_count_its_customer(plans):
    course = ProductFactory(sku="COURSE", price=D("100.00"))
    kept, refunded = LearnerFactory(), LearnerFactory()
    for learner in (kept, refunded):
        OrderLineFactory(
            order=OrderFactory(learner=learner, placed_at=at("2025-10-02")), product=course
        )
    OrderLineFactory(
        order=OrderFactory(learner=kept, placed_at=at("2025-11-05")), product=plans["addon"]
    )
    OrderLineFactory(
        order=OrderFactory(learner=refunded, placed_at=at("2025-11-06")),
        product=plans["addon"],
        refunded_amount=D("20.00"),
    )

    rows = expansion_by_type(first=date(2025, 11, 1), last=date(2025, 11, 30))
    assert rows == [ExpansionByType("add_on", False, D("20.00"), 1)]
    assert rows[0].per_customer == D("20.00")
    (nov,) = revenue_metrics(period="month", first=date(2025, 11, 1), last=date(2025, 11, 30))
    assert (nov.expansion_revenue, nov.expansion_by_type) == (D("20.00"), {"add_on": D("20.00")})


def test_a_month_of_only_refunded_add_ons_has_no_by_type_row(plans):
    learner = LearnerFactory()
    OrderLineFactory(order=OrderFactory(learner=learner, placed_at=at("2025-10-02")))
    OrderLineFactory(
        order=OrderFactory(learner=learner, placed_at=at("2025-11-06")),
        product=plans["addon"],
        refunded_amount=D("20.00"),
    )
    assert expansion_by_type(first=date(2025, 11, 1), last=date(2025, 11, 30)) == []
    (nov,) = revenue_metrics(period="month", first=date(2025, 11, 1), last=date(2025, 11, 30))
    assert (nov.expansion_revenue, nov.expansion_by_type) == (D("0.00"), {})


@pytest.mark.parametrize(("period", "queries"), [("month", 14), ("day", 19)])
def test_the_dashboard_is_a_fixed_number_of_queries(
    november, django_assert_num_queries, period, queries
):
    # A metrics pass is five statements (orders, one-time expansion, attach rates, opening MRR,
    # movements); by day the current month takes a second pass. Then the By-type table (two)
    # and the top opportunities: the same whatever the number of customers or changes.
    with django_assert_num_queries(queries):
        context = revenue_dashboard_context(period=period, today=date(2025, 11, 30))
    assert (context["current"].period_start, context["current"].mrr_expansion) == (
        date(2025, 11, 1),
        D("120.00"),
    )


def test_the_dashboard_shows_the_by_type_totals(plans, admin_client):
    month_start = timezone.now().date().replace(day=1)
    before, switch = str(month_start - timedelta(days=20)), str(month_start)
    learner = LearnerFactory()
    ledger(
        SubscriptionFactory(learner=learner, plan=plans["basic"]),
        (before, "0", "50"),
        (switch, "50", "0"),
    )
    ledger(SubscriptionFactory(learner=learner, plan=plans["pro"]), (switch, "0", "100"))

    page = admin_client.get("/admin/expansion/order/revenue/").content.decode()

    assert '<div class="kpi-label">Expansion MRR</div><div class="kpi-value">$50.00</div>' in page
    assert (
        '<td>upsell</td><td>MRR</td><td class="num">$50.00</td><td class="num">1</td>'
        '<td class="num">$50.00</td>'
    ) in page
    assert '<tr><th>Total</th><th>MRR</th><th class="num">$50.00</th>' in page
