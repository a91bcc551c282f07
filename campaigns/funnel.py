"""Funnel analytics: eligible → suppressed (by rule) → sent → delivered → opened/seen → clicked
→ converted, and revenue, by campaign, trigger, moment, segment, LPS band or channel; and the
revenue a campaign earned beyond its holdout. Each figure is one grouped query over the sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from .models import Rule, Send

DIMENSIONS = {
    "campaign": ("campaign__name", "Campaign"),
    "trigger": ("trigger", "Trigger"),
    "moment": ("moment__name", "Moment"),
    "segment": ("campaign__segment__name", "Segment"),
    "band": ("learner__score__band", "LPS band (now)"),
    "channel": ("channel", "Channel"),
}
STAGES = ("eligible", "suppressed", "sent", "delivered", "opened", "clicked", "converted")


def _sends(since: datetime | None, until: datetime | None) -> QuerySet:
    qs = Send.objects.filter(campaign__isnull=False, is_test=False)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def funnel(
    *, by: str = "campaign", since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per value of the dimension ``by`` (see ``DIMENSIONS``), largest first."""
    field, _ = DIMENSIONS[by]
    rows = (
        _sends(since, until)
        .values(key=Coalesce(F(field), Value("—")))
        .annotate(
            eligible=Count("id"),
            suppressed=Count("id", filter=Q(status="suppressed")),
            sent=Count("id", filter=Q(sent_at__isnull=False) | Q(seen_at__isnull=False)),
            delivered=Count("id", filter=Q(delivered_at__isnull=False)),
            opened=Count("id", filter=Q(opened_at__isnull=False) | Q(seen_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
            converted=Count("id", filter=Q(converted_order__isnull=False)),
            dismissed=Count("id", filter=Q(dismissed_at__isnull=False)),
            revenue=Coalesce(
                Sum("revenue"), Value(Decimal("0")), output_field=DecimalField(decimal_places=2)
            ),
        )
        .order_by("-eligible", "key")
    )
    return [dict(row) for row in rows]


def suppressed_by_rule(
    *, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[str, int]]:
    labels = dict(Rule.choices)
    rows = (
        _sends(since, until)
        .filter(status="suppressed")
        .values_list("rule")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return [(labels.get(rule, rule or "—"), n) for rule, n in rows]


def dismiss_reasons(
    *, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[str, int]]:
    """In-app dismissals by reason code ("not now" and the rest), most frequent first."""
    from .models import DismissReason

    labels = dict(DismissReason.choices)
    rows = (
        _sends(since, until)
        .filter(dismissed_at__isnull=False)
        .values_list("dismiss_reason")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return [(labels.get(code, code), n) for code, n in rows]


@dataclass(frozen=True)
class Incremental:
    campaign: str
    treated: int
    holdout: int
    revenue_per_treated: Decimal
    revenue_per_holdout: Decimal
    incremental_revenue: Decimal


def incremental_revenue(*, window_days: int = 7) -> list[Incremental]:
    """Per campaign with a holdout: net revenue per learner within ``window_days`` of the
    decision, treated (queued or sent) against held out, and the difference × treated.

    Intent to treat: every treated learner counts, whether the email converted or not; any
    order counts, attributed or not — what the holdout shows is what would have happened
    anyway.
    """
    if connection.vendor == "postgresql":
        window = (
            "o.placed_at >= s.created_at AND o.placed_at < s.created_at + make_interval(days => %s)"
        )
    else:
        window = (
            "datetime(o.placed_at) >= datetime(s.created_at) "
            "AND datetime(o.placed_at) < datetime(s.created_at, '+' || %s || ' days')"
        )
    sql = f"""
        SELECT c.name,
          SUM(CASE WHEN s.rule = '' THEN 1 ELSE 0 END) AS treated,
          SUM(CASE WHEN s.rule = %s THEN 1 ELSE 0 END) AS held,
          SUM(CASE WHEN s.rule = '' THEN r.revenue ELSE 0 END) AS treated_revenue,
          SUM(CASE WHEN s.rule = %s THEN r.revenue ELSE 0 END) AS held_revenue
        FROM campaigns_send s
        JOIN campaigns_campaign c ON c.id = s.campaign_id
        JOIN (
          SELECT s.id AS send_id, COALESCE(SUM(l.unit_price * l.quantity - l.refunded_amount), 0)
            AS revenue
          FROM campaigns_send s
          LEFT JOIN expansion_order o ON o.learner_id = s.learner_id AND {window}
          LEFT JOIN expansion_orderline l ON l.order_id = o.id
          WHERE s.campaign_id IS NOT NULL AND s.is_test = %s AND (s.rule = '' OR s.rule = %s)
          GROUP BY s.id
        ) r ON r.send_id = s.id
        GROUP BY c.name
        HAVING SUM(CASE WHEN s.rule = %s THEN 1 ELSE 0 END) > 0
        ORDER BY c.name
    """
    holdout = str(Rule.HOLDOUT)
    params: list[Any] = [holdout, holdout, window_days, False, holdout, holdout]
    out = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for name, treated, held, treated_revenue, held_revenue in cursor.fetchall():
            per_treated = Decimal(str(treated_revenue or 0)) / treated if treated else Decimal(0)
            per_held = Decimal(str(held_revenue or 0)) / held if held else Decimal(0)
            out.append(
                Incremental(
                    campaign=name,
                    treated=treated,
                    holdout=held,
                    revenue_per_treated=per_treated.quantize(Decimal("0.01")),
                    revenue_per_holdout=per_held.quantize(Decimal("0.01")),
                    incremental_revenue=((per_treated - per_held) * treated).quantize(
                        Decimal("0.01")
                    ),
                )
            )
    return out


def funnel_chart(row: dict[str, Any], width: int = 520) -> list[dict[str, Any]]:
    """Bars for one funnel row, each as wide as its share of the eligible."""
    top = row["eligible"] or 1
    return [
        {
            "stage": stage,
            "n": row[stage],
            "width": round(width * row[stage] / top),
            "share": row[stage] / top,
            "y": index * BAR_STEP,
            "text_y": index * BAR_STEP + 9,
            "label_x": 86 + round(width * row[stage] / top),
        }
        for index, stage in enumerate(STAGES)
    ]


BAR_STEP = 14
CHART_HEIGHT = BAR_STEP * len(STAGES)
