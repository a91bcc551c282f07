"""Revenue metrics per day, week or month — each figure one grouped SQL statement.

Definitions (one currency per deployment, ``EXPANSION_CURRENCY``; periods are UTC calendar
days, ISO weeks starting Monday, and calendar months):

- **orders**: orders placed in the period; **revenue**: line totals minus refunds of those
  orders (a refund counts against the period the order was placed in); **AOV** = revenue /
  orders.
- **gross margin** = (revenue − unit cost × units) / revenue, over lines whose product has a
  unit cost (lines of products without one are left out of both sides).
- **attach rate** of an add-on (a product with ``attaches_to``) = add-on units / units of its
  primary product, both from orders placed in the period, fully refunded lines excluded.
- **expansion revenue (one-time)**: revenue of lines bought by an existing customer (a
  learner with an earlier order or an earlier subscription), typed by the product bought:
  plan = upsell, add-on = add-on, seat pack = seat expansion, anything else = cross-sell.
  A fully refunded line is no expansion and its buyer not one of the customers behind it.
- **MRR movements** follow ChartMogul: per customer (a learner, or an account for team
  plans), changes at the same moment are netted, then a change from 0 is *new business* —
  or *reactivation* if the customer paid before —, to 0 is *churn*, up is *expansion*, down
  is *contraction*. So cancelling Basic 50 and starting Pro 100 at one moment is one
  expansion of 50, and a second (add-on) subscription of a paying customer is expansion.
  An expansion is typed by its largest increase: a paying subscription's change keeps the
  sync's type (plan change = upsell, more seats = seat expansion, else usage / price); a
  subscription that starts paying is typed by its product, as one-time expansion is.
- **NRR and GRR** are about the customers paying at the start of the period (MRR > 0 before
  their first moment in it): start = the ledger summed before the period; NRR = (start +
  their expansion + reactivation − contraction − churn) / start, i.e. what those customers
  pay at the end over what they paid at the start; GRR = (start − their contraction −
  churn) / start. A customer who starts paying during the period moves neither. Both None
  when the period starts with no MRR.
- **Expansion by type** (the dashboard's table) is the same expansion movements, so its
  recurring rows sum exactly to the expansion MRR of the same days, then the one-time rows.

Exact at any size the API accepts (money ≤ 9,999,999,999.99, a line's quantity ≤ 1,000,000,
any number of lines): the SQL sums money in cents in PostgreSQL's numeric, which is exact;
Python's arithmetic runs in :data:`EXACT`, whose :data:`DIGITS` significant digits hold 10²²
of the largest lines.

One module past 400 lines: every figure shares the period arithmetic, and the dashboard's
table shares the movement SQL with the MRR figures so that the two cannot disagree.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any, Literal

from django.db import connection, connections
from django.db.models import Count, F
from django.utils import timezone

from expansion.core.db.router import replica_alias
from learners.models import Event, EventKind

from .models import (
    CommerceSettings,
    Order,
    OrderLine,
    Product,
    ProductKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)

Period = Literal["day", "week", "month"]
PERIODS: tuple[str, ...] = ("day", "week", "month")
ZERO = Decimal("0.00")
CENT = Decimal("0.01")
MAX_PERIODS = 400
# Significant digits of every figure (the API's fields carry as many): 38 whole digits of
# money hold 10²² lines of 1,000,000 × 9,999,999,999.99, and ratios keep 36 whole digits.
DIGITS = 40
EXACT = Context(prec=DIGITS, rounding=ROUND_HALF_UP)


def period_floor(period: str, day: date) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_next(period: str, start: date) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    days = calendar.monthrange(start.year, start.month)[1]
    return start.replace(day=1) + timedelta(days=days)


def period_starts(period: str, first: date, last: date) -> list[date]:
    """The starts of the periods covering ``first`` … ``last`` (inclusive), in order."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    if last < first:
        raise ValueError("the end is before the start")
    starts = [period_floor(period, first)]
    while (following := period_next(period, starts[-1])) <= last:
        starts.append(following)
        if len(starts) > MAX_PERIODS:
            raise ValueError(f"at most {MAX_PERIODS} periods at a time")
    return starts


def _moment(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _ts(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _trunc_sql(period: str, column: str) -> str:
    """The period start of a UTC timestamp column, as a date."""
    unit = {"day": "day", "week": "week", "month": "month"}[period]
    return f"CAST(date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AS date)"


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _cursor() -> Any:
    # Analytics tolerate replication lag: the replica when there is one (not in a transaction).
    return connections[replica_alias()].cursor()


def _cents(column: str) -> str:
    """SQL: a money column in cents (numeric: exact)."""
    return f"({column} * 100)"


def _sum(cents: str) -> str:
    """SQL: the exact sum of an amount in cents, whatever the number of rows (numeric)."""
    return f"SUM({cents})"


def _money(cents: Any) -> Decimal:
    """A sum in cents from the SQL above, in the currency (0.00 for no rows)."""
    if cents is None:
        return ZERO
    return EXACT.divide(Decimal(str(cents)), Decimal(100)).quantize(CENT, context=EXACT)


def _ratio(numerator: Decimal, denominator: Decimal, places: str = "0.0001") -> Decimal | None:
    if not denominator:
        return None
    return EXACT.divide(numerator, denominator).quantize(Decimal(places), context=EXACT)


@dataclass
class PeriodMetrics:
    period_start: date
    orders: int = 0
    revenue: Decimal = ZERO
    aov: Decimal | None = None
    gross_margin: Decimal | None = None
    expansion_revenue: Decimal = ZERO
    expansion_by_type: dict[str, Decimal] = field(default_factory=dict)
    mrr_start: Decimal = ZERO
    mrr_new: Decimal = ZERO
    mrr_expansion: Decimal = ZERO
    mrr_contraction: Decimal = ZERO
    mrr_churn: Decimal = ZERO
    mrr_reactivation: Decimal = ZERO
    mrr_end: Decimal = ZERO
    mrr_expansion_by_type: dict[str, Decimal] = field(default_factory=dict)
    nrr: Decimal | None = None
    grr: Decimal | None = None
    attach_rates: dict[str, Decimal | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def revenue_metrics(*, period: str, first: date, last: date) -> list[PeriodMetrics]:
    """Every figure for each period covering ``first`` … ``last``; see the module docstring.

    A fixed number of statements whatever the data: orders, attach rates, MRR movements and
    the MRR before the range.
    """
    starts = period_starts(period, first, last)
    rows = {start: PeriodMetrics(period_start=start) for start in starts}
    lo, hi = _moment(starts[0]), _moment(period_next(period, starts[-1]))
    with localcontext(EXACT):
        _orders(rows, period, lo, hi)
        _attach(rows, period, lo, hi)
        _mrr(rows, period, lo, hi)
        for row in rows.values():
            row.aov = _ratio(row.revenue, Decimal(row.orders), "0.01")
    return [rows[start] for start in starts]


_KIND = (
    f"CASE p.kind WHEN '{ProductKind.PLAN}' THEN 'upsell' WHEN '{ProductKind.ADDON}' "
    f"THEN 'add_on' WHEN '{ProductKind.SEAT_PACK}' THEN 'seat_expansion' ELSE 'cross_sell' END"
)


def _net() -> str:
    """SQL: line ``l``'s total less its refund, in cents."""
    return f"({_cents('l.unit_price')} * l.quantity - {_cents('l.refunded_amount')})"


def _kept() -> str:
    """SQL: line ``l`` is not fully refunded. Only these make one-time expansion (a refunded
    add-on is no expansion, and its buyer is not a customer behind the figure)."""
    return f"{_cents('l.refunded_amount')} < {_cents('l.unit_price')} * l.quantity"


def _existing_customer() -> str:
    """SQL: order ``o``'s learner had an earlier order or an earlier subscription change."""
    order, change = Order._meta.db_table, SubscriptionChange._meta.db_table
    return f"""(EXISTS (SELECT 1 FROM {order} e WHERE e.learner_id = o.learner_id
                  AND (e.placed_at < o.placed_at OR (e.placed_at = o.placed_at AND e.id < o.id)))
                OR EXISTS (SELECT 1 FROM {change} s WHERE s.learner_id = o.learner_id
                  AND s.effective_at < o.placed_at))"""


def _orders(rows: dict[date, PeriodMetrics], period: str, lo: datetime, hi: datetime) -> None:
    line, order, product = OrderLine._meta.db_table, Order._meta.db_table, Product._meta.db_table
    trunc = _trunc_sql(period, "o.placed_at")
    kind, net, existing = _KIND, _net(), _existing_customer()
    cost = f"{_cents('p.unit_cost')} * l.quantity"
    with _cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {trunc} AS period, COUNT(DISTINCT o.id), {_sum(net)},
              {_sum(f"CASE WHEN p.unit_cost IS NOT NULL THEN {net} END")},
              {_sum(f"CASE WHEN p.unit_cost IS NOT NULL THEN {cost} END")}
            FROM {order} o JOIN {line} l ON l.order_id = o.id
            JOIN {product} p ON p.id = l.product_id
            WHERE o.placed_at >= %s AND o.placed_at < %s
            GROUP BY {trunc}
            """,
            [_ts(lo), _ts(hi)],
        )
        for period_start, orders, revenue, costed_cents, cost_cents in cursor.fetchall():
            row = rows[_as_date(period_start)]
            row.orders, row.revenue = orders, _money(revenue)
            costed = _money(costed_cents)
            if costed:
                row.gross_margin = _ratio(costed - _money(cost_cents), costed)
        cursor.execute(
            f"""
            SELECT {trunc} AS period, {kind} AS kind, {_sum(net)}
            FROM {order} o JOIN {line} l ON l.order_id = o.id
            JOIN {product} p ON p.id = l.product_id
            WHERE o.placed_at >= %s AND o.placed_at < %s AND {_kept()} AND {existing}
            GROUP BY {trunc}, {kind}
            """,
            [_ts(lo), _ts(hi)],
        )
        for period_start, expansion_type, revenue in cursor.fetchall():
            row = rows[_as_date(period_start)]
            row.expansion_by_type[expansion_type] = _money(revenue)
            row.expansion_revenue += _money(revenue)


def _attach(rows: dict[date, PeriodMetrics], period: str, lo: datetime, hi: datetime) -> None:
    addons: list[tuple[int, str, int]] = [
        (pid, sku, primary)
        for pid, sku, primary in Product.objects.filter(attaches_to__isnull=False).values_list(
            "id", "sku", "attaches_to"
        )
        if primary is not None
    ]
    if not addons:
        return
    wanted = {pid for pid, _, _ in addons} | {primary for _, _, primary in addons}
    units: dict[tuple[date, int], int] = {}
    line, order = OrderLine._meta.db_table, Order._meta.db_table
    trunc = _trunc_sql(period, "o.placed_at")
    marks = ", ".join(["%s"] * len(wanted))
    with _cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {trunc}, l.product_id, SUM(l.quantity)
            FROM {order} o JOIN {line} l ON l.order_id = o.id
            WHERE o.placed_at >= %s AND o.placed_at < %s AND l.product_id IN ({marks})
              AND {_kept()}
            GROUP BY {trunc}, l.product_id
            """,
            [_ts(lo), _ts(hi), *sorted(wanted)],
        )
        for period_start, product_id, quantity in cursor.fetchall():
            units[(_as_date(period_start), product_id)] = int(quantity)
    for start, row in rows.items():
        for addon_id, sku, primary_id in addons:
            primary = Decimal(units.get((start, primary_id), 0))
            row.attach_rates[sku] = _ratio(Decimal(units.get((start, addon_id), 0)), primary)


def _movements_sql() -> str:
    """SQL ``WITH`` clauses ending in ``classified``: one row per customer and moment before
    the first parameter (exclusive), with ``delta``, ``before_c``, ``after_c`` (the customer's
    MRR either side of the moment, all three in cents), ``movement`` (None when the moment
    nets to nothing) and, for an increase, ``expansion_type``.

    A moment's changes are netted per customer, so a cancellation and a start at the same
    moment are one movement (an upgrade through a second subscription is expansion, not churn
    plus new business). The moment is typed by its largest increase: a change of a paying
    subscription keeps the type the sync gave it (empty = usage / price); a subscription that
    starts paying is typed by its product, like one-time expansion (plan = upsell, add-on,
    seat pack = seat expansion, else cross-sell).
    """
    change, sub = SubscriptionChange._meta.db_table, Subscription._meta.db_table
    product, kind = Product._meta.db_table, _KIND
    return f"""
        WITH typed AS (
          SELECT c.id, c.learner_id, c.account_id, c.effective_at,
            {_cents("c.mrr_after")} - {_cents("c.mrr_before")} AS delta,
            CASE WHEN c.mrr_after <= c.mrr_before THEN NULL
              WHEN c.mrr_before > 0 THEN COALESCE(NULLIF(c.expansion_type, ''), 'usage')
              ELSE {kind} END AS rise_type
          FROM {change} c JOIN {sub} s ON s.id = c.subscription_id
          JOIN {product} p ON p.id = s.plan_id
          WHERE c.effective_at < %s
        ), ranked AS (
          SELECT t.*, FIRST_VALUE(rise_type) OVER (
              PARTITION BY learner_id, account_id, effective_at ORDER BY delta DESC, id
            ) AS moment_type
          FROM typed t
        ), netted AS (
          SELECT learner_id, account_id, effective_at,
            SUM(delta) AS delta, MAX(moment_type) AS expansion_type
          FROM ranked GROUP BY learner_id, account_id, effective_at
        ), running AS (
          SELECT n.*, SUM(delta) OVER (
              PARTITION BY learner_id, account_id ORDER BY effective_at
              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS after_c
          FROM netted n
        ), m AS (
          SELECT r.*, after_c - delta AS before_c, MAX(after_c) OVER (
              PARTITION BY learner_id, account_id ORDER BY effective_at
              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS peak_before
          FROM running r
        ), classified AS (
          SELECT m.*, CASE
              WHEN before_c <= 0 AND after_c > 0 THEN
                CASE WHEN COALESCE(peak_before, 0) > 0 THEN 'reactivation' ELSE 'new' END
              WHEN before_c > 0 AND after_c <= 0 THEN 'churn'
              WHEN after_c > before_c THEN 'expansion'
              WHEN after_c < before_c THEN 'contraction'
            END AS movement
          FROM m
        )"""


def _mrr(rows: dict[date, PeriodMetrics], period: str, lo: datetime, hi: datetime) -> None:
    change = SubscriptionChange._meta.db_table
    # Per period, the movements of the customers who paid at its start (their MRR before
    # their first moment in it): NRR and GRR are about those customers only.
    retained: dict[date, Decimal] = {start: ZERO for start in rows}
    lost: dict[date, Decimal] = {start: ZERO for start in rows}
    delta = f"{_cents('mrr_after')} - {_cents('mrr_before')}"
    with _cursor() as cursor:
        cursor.execute(
            f"SELECT {_sum(delta)} FROM {change} WHERE effective_at < %s",
            [_ts(lo)],
        )
        opening = _money(cursor.fetchone()[0])
        trunc = _trunc_sql(period, "c.effective_at")
        cursor.execute(
            f"""
            {_movements_sql()}, periodic AS (
              SELECT c.*, {trunc} AS period_start, FIRST_VALUE(before_c) OVER (
                  PARTITION BY learner_id, account_id, {trunc} ORDER BY effective_at
                ) AS opening_c
              FROM classified c WHERE effective_at >= %s
            )
            SELECT period_start, movement, expansion_type,
              CASE WHEN opening_c > 0 THEN 1 ELSE 0 END AS paid_at_start, {_sum("delta")}
            FROM periodic
            WHERE movement IS NOT NULL
            GROUP BY period_start, movement, expansion_type,
              CASE WHEN opening_c > 0 THEN 1 ELSE 0 END
            """,
            [_ts(hi), _ts(lo)],
        )
        for period_start, movement, expansion_type, paid_at_start, delta in cursor.fetchall():
            start = _as_date(period_start)
            row = rows[start]
            amount = _money(delta)
            if paid_at_start:
                retained[start] += amount
                if movement in ("contraction", "churn"):
                    lost[start] -= amount
            if movement == "expansion":
                row.mrr_expansion += amount
                key = expansion_type or "usage"
                row.mrr_expansion_by_type[key] = row.mrr_expansion_by_type.get(key, ZERO) + amount
            elif movement == "new":
                row.mrr_new += amount
            elif movement == "reactivation":
                row.mrr_reactivation += amount
            elif movement == "contraction":
                row.mrr_contraction -= amount
            else:
                row.mrr_churn -= amount
    for start in sorted(rows):
        row = rows[start]
        row.mrr_start = opening
        row.mrr_end = (
            opening
            + row.mrr_new
            + row.mrr_reactivation
            + row.mrr_expansion
            - row.mrr_contraction
            - row.mrr_churn
        )
        row.nrr = _ratio(opening + retained[start], opening)
        row.grr = _ratio(opening - lost[start], opening)
        opening = row.mrr_end


@dataclass(frozen=True)
class ExpansionByType:
    """One line of seed 002's "By type" table. ``recurring``: MRR added, else one-time."""

    kind: str
    recurring: bool
    amount: Decimal
    customers: int

    @property
    def per_customer(self) -> Decimal | None:
        return _ratio(self.amount, Decimal(self.customers), "0.01")


def expansion_by_type(*, first: date, last: date) -> list[ExpansionByType]:
    """Expansion in ``first`` … ``last`` by type, each with the customers behind it: the
    expansion movements of ``revenue_metrics`` (so the recurring rows sum exactly to its
    expansion MRR over the same days), then one-time revenue from existing customers (typed
    by product; fully refunded lines count neither their amount nor their customer).
    Recurring rows first, each part ordered by type."""
    lo, hi = _moment(first), _moment(last + timedelta(days=1))
    found: list[ExpansionByType] = []
    line, order, product = OrderLine._meta.db_table, Order._meta.db_table, Product._meta.db_table
    with _cursor() as cursor:
        cursor.execute(
            f"""
            {_movements_sql()}
            SELECT COALESCE(expansion_type, 'usage'), {_sum("delta")},
              COUNT(DISTINCT learner_id) + COUNT(DISTINCT account_id)
            FROM classified
            WHERE effective_at >= %s AND movement = 'expansion'
            GROUP BY COALESCE(expansion_type, 'usage') ORDER BY 1
            """,
            [_ts(hi), _ts(lo)],
        )
        for kind, amount, customers in cursor.fetchall():
            found.append(ExpansionByType(kind, True, _money(amount), customers))
        cursor.execute(
            f"""
            SELECT {_KIND}, {_sum(_net())}, COUNT(DISTINCT o.learner_id)
            FROM {order} o JOIN {line} l ON l.order_id = o.id
            JOIN {product} p ON p.id = l.product_id
            WHERE o.placed_at >= %s AND o.placed_at < %s AND {_kept()} AND {_existing_customer()}
            GROUP BY {_KIND} ORDER BY 1
            """,
            [_ts(lo), _ts(hi)],
        )
        for kind, amount, customers in cursor.fetchall():
            found.append(ExpansionByType(kind, False, _money(amount), customers))
    return found


@dataclass(frozen=True)
class Opportunity:
    holder: str
    mrr: Decimal
    opportunity: str
    signal: str


def top_opportunities(*, now: datetime | None = None, limit: int = 20) -> list[Opportunity]:
    """Seed 002's "Top opportunities": subscriptions near their quota or seat limit, and
    customers who keep reaching for premium features. Highest MRR first."""
    now = now or timezone.now()
    policy = CommerceSettings.load()
    live = Subscription.objects.filter(
        status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE]
    ).select_related("learner", "account", "plan")
    found: list[Opportunity] = []
    quota = live.filter(quota_limit__gt=0).filter(
        quota_used__gte=F("quota_limit") * float(policy.quota_opportunity)
    )
    for sub in quota.order_by("-mrr", "id")[:limit]:
        share = Decimal(sub.quota_used or 0) / Decimal(sub.quota_limit or 1)
        found.append(
            Opportunity(
                _holder(sub), sub.mrr, f"Upgrade from {sub.plan.name}", f"{share:.0%} of quota"
            )
        )
    seats = live.filter(seats_limit__gt=0).filter(
        seats_used__gte=F("seats_limit") * float(policy.seat_opportunity)
    )
    for sub in seats.order_by("-mrr", "id")[:limit]:
        found.append(
            Opportunity(
                _holder(sub), sub.mrr, "Add seats", f"{sub.seats_used} of {sub.seats_limit} seats"
            )
        )
    since = now - timedelta(days=policy.feature_request_days)
    attempts = (
        Event.objects.filter(
            kind=EventKind.PREMIUM_FEATURE_ATTEMPTED, occurred_at__gte=since, occurred_at__lte=now
        )
        .values("learner_id", "learner__external_id", "learner__name")
        .annotate(n=Count("id"))
        .filter(n__gte=policy.feature_request_events)
        .order_by("-n", "learner_id")[:limit]
    )
    mrr_by_learner = _mrr_by_learner([a["learner_id"] for a in attempts])
    for attempt in attempts:
        name = attempt["learner__name"] or attempt["learner__external_id"]
        found.append(
            Opportunity(
                name,
                mrr_by_learner.get(attempt["learner_id"], ZERO),
                "Premium tier or add-on",
                f"{attempt['n']} premium-feature attempts in {policy.feature_request_days} days",
            )
        )
    found.sort(key=lambda o: (-o.mrr, o.holder))
    return found[:limit]


def _mrr_by_learner(learner_ids: list[int]) -> dict[int, Decimal]:
    """The MRR of each learner's live subscriptions, summed exactly."""
    if not learner_ids:
        return {}
    table = Subscription._meta.db_table
    marks = ", ".join(["%s"] * len(learner_ids))
    with _cursor() as cursor:
        cursor.execute(
            f"""
            SELECT learner_id, {_sum(_cents("mrr"))} FROM {table}
            WHERE status IN (%s, %s) AND learner_id IN ({marks}) GROUP BY learner_id
            """,
            [SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, *learner_ids],
        )
        return {learner_id: _money(cents) for learner_id, cents in cursor.fetchall()}


def _holder(sub: Subscription) -> str:
    if sub.account is not None:
        return sub.account.name or sub.account.external_id
    assert sub.learner is not None
    return sub.learner.name or sub.learner.external_id
