"""The revenue dashboard (/admin/expansion/order/revenue/): revenue, MRR movements,
expansion by type and the top opportunities, over the last 12 days, weeks or months."""

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from expansion.commerce.metrics import (
    EXACT,
    PERIODS,
    expansion_by_type,
    period_floor,
    revenue_metrics,
    top_opportunities,
)
from expansion.core.charts import Kind, bar_chart, currency_symbol
from expansion.core.db.router import replica_reads


def _total(amounts: Iterable[Decimal]) -> Decimal:
    """A sum of metric amounts, exact at any size they come in (the metrics' precision)."""
    with localcontext(EXACT):
        return sum(amounts, Decimal("0.00"))


def revenue_dashboard_context(*, period: str, today: date) -> dict[str, Any]:
    """Figures and charts for the revenue dashboard: the last 12 periods to ``today``."""
    span = {"day": timedelta(days=29), "week": timedelta(weeks=11), "month": timedelta(days=340)}
    first = period_floor(period, today - span[period])
    rows = revenue_metrics(period=period, first=first, last=today)
    label = {"day": "%d %b", "week": "%d %b", "month": "%b %y"}[period]

    def chart(attr: str, title: str, kind: Kind = "money") -> dict[str, Any]:
        return bar_chart(
            [(r.period_start.strftime(label), float(getattr(r, attr) or 0)) for r in rows],
            kind=kind,
            title=title,
        )

    skus = sorted({sku for r in rows for sku in r.attach_rates})
    month_start = today.replace(day=1)
    # By month, the last row is the current month already (each pass walks the whole ledger).
    if period == "month":
        current = rows[-1]
    else:
        current = revenue_metrics(period="month", first=month_start, last=today)[0]
    # The whole month, as ``current`` covers it: the MRR rows then sum to its Expansion MRR.
    month_end = (month_start + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    by_type = expansion_by_type(first=month_start, last=month_end)
    return {
        "period": period,
        "periods": PERIODS,
        "rows": rows,
        "current": current,
        "month": month_start,
        "charts": [
            chart("revenue", f"Revenue ({currency_symbol().strip()})"),
            chart("orders", "Orders", "number"),
            chart("mrr_end", "MRR at the end of the period"),
            chart("mrr_expansion", "Expansion MRR"),
            chart("expansion_revenue", "Expansion revenue (one-time)"),
            chart("mrr_churn", "Churned MRR"),
            chart("nrr", "Net revenue retention", "percent"),
        ],
        "attach_skus": skus,
        # Each row with its attach rates, one column per add-on in the same order.
        "table": [(r, [r.attach_rates.get(sku) for sku in skus]) for r in rows],
        "currency": settings.EXPANSION_CURRENCY,
        "period_format": {"day": "D j M", "week": "j M Y", "month": "M Y"}[period],
        "by_type": by_type,
        "by_type_mrr": _total(row.amount for row in by_type if row.recurring),
        "by_type_one_time": _total(row.amount for row in by_type if not row.recurring),
        "by_type_chart": bar_chart(
            [
                (f"{row.kind} ({'MRR' if row.recurring else 'one-time'})", float(row.amount))
                for row in by_type
            ],
            kind="money",
            title="Expansion by type, this month",
        ),
        "opportunities": top_opportunities(),
    }


def revenue_view(request: HttpRequest) -> HttpResponse:
    """The revenue dashboard (/admin/expansion/order/revenue/)."""
    if not request.user.has_perm("expansion.view_order"):
        return HttpResponse(status=403)
    period = request.GET.get("period", "month")
    if period not in PERIODS:
        period = "month"
    # Analytics tolerate replication lag: every read from the replica when there is one.
    with replica_reads():
        context = {
            **admin.site.each_context(request),
            **revenue_dashboard_context(period=period, today=timezone.now().date()),
            "title": "Revenue and expansion",
        }
        return TemplateResponse(request, "expansion/revenue_dashboard.html", context).render()
