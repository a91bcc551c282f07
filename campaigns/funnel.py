"""Funnel analytics: eligible → suppressed (by rule) → sent → delivered → opened/seen → clicked
→ converted, and revenue, by campaign, trigger, moment, segment, LPS band or channel; and the
revenue a campaign earned beyond its holdout. Each figure is one grouped query over the sends.

Every eligible send is accounted for by its status: eligible = suppressed + queued + sending +
failed + sent (sent or any later status), exactly (``status_counts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from expansion.commerce.models import Order, OrderLine
from learners.models import Course

from .models import Campaign, DismissReason, Rule, Send, SendStatus
from .roles import creator_sends

DIMENSIONS = {
    "campaign": ("campaign__name", "Campaign"),
    "trigger": ("trigger", "Trigger"),
    "moment": ("moment__name", "Moment"),
    "segment": ("campaign__segment__name", "Segment"),
    "band": ("learner__score__band", "LPS band (now)"),
    "channel": ("channel", "Channel"),
}
STAGES = ("eligible", "suppressed", "sent", "delivered", "opened", "clicked", "converted")
# Where each eligible send is now, by status; these add up to the eligible.
ACCOUNTED = ("suppressed", "queued", "sending", "failed", "sent")
# The bars of a funnel chart: the accounting first, then the stages a sent message reaches.
BARS = ("eligible", *ACCOUNTED, "delivered", "opened", "clicked", "converted")
# "Sent": it left, and nothing since says it failed (a bounce or complaint moves it to failed).
SENT_ONWARDS = (
    SendStatus.SENT,
    SendStatus.DELIVERED,
    SendStatus.OPENED,
    SendStatus.CLICKED,
    SendStatus.CONVERTED,
    SendStatus.DISMISSED,
)


# Each status column of ``ACCOUNTED`` as a condition on a send.
STATUS_IS = {
    "suppressed": Q(status=SendStatus.SUPPRESSED),
    "queued": Q(status=SendStatus.QUEUED),
    "sending": Q(status=SendStatus.SENDING),
    "failed": Q(status=SendStatus.FAILED),
    "sent": Q(status__in=SENT_ONWARDS),
}


def status_counts() -> dict[str, Count]:
    """``Count`` annotations of grouped sends in each status of ``ACCOUNTED``: one grouped
    query however many groups (``COUNT(*) FILTER (WHERE …)``)."""
    return {name: Count("id", filter=condition) for name, condition in STATUS_IS.items()}


def campaign_status_counts() -> dict[str, Coalesce]:
    """Annotations of a campaign queryset: its sends in each status of ``ACCOUNTED``, each a
    ``COUNT(*)`` over the (campaign, status) index in the same query, so a page of campaigns
    costs one query however many rows it has.

    Not ``Count("sends", filter=…)`` over a join: that drags each campaign's whole row (and its
    moment's and offer's) through a sort of all its sends, and the page's result counts keep
    the join. With 200,000 sends on one campaign (analysed): 131 ms for the rows and 24 ms for
    each of the two counts that way, 10 ms and 0.5 ms this way (before ANALYZE the join sorted
    110 MB on disk: 650 ms).
    """
    sends = Send.objects.filter(campaign=OuterRef("pk")).order_by()
    # COUNT(*) with no GROUP BY: one row per campaign, read from the index alone.
    count = Func(function="COUNT", template="COUNT(*)", output_field=IntegerField())
    return {
        name: Coalesce(
            Subquery(sends.filter(condition).annotate(n=count).values("n")),
            Value(0),
            output_field=IntegerField(),
        )
        for name, condition in STATUS_IS.items()
    }


def _sends(
    since: datetime | None, until: datetime | None, creator_id: int | None = None
) -> QuerySet:
    """Campaign sends, not test sends; with ``creator_id``, only those that creator sees in the
    send list (``roles.creator_sends``: their courses' campaigns', and their courses' sends of a
    campaign about no course)."""
    qs = Send.objects.filter(campaign__isnull=False, is_test=False)
    if creator_id is not None:
        qs = qs.filter(creator_sends(creator_id))
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def funnel(
    *,
    by: str = "campaign",
    since: datetime | None = None,
    until: datetime | None = None,
    creator_id: int | None = None,
) -> list[dict[str, Any]]:
    """One row per value of the dimension ``by`` (see ``DIMENSIONS``), largest first.

    ``suppressed``, ``queued``, ``sending``, ``failed`` and ``sent`` count the sends by their
    status now and add up to ``eligible``; ``delivered`` … ``dismissed`` count the sends that
    ever reached that stage (a message opened and then complained about is failed, and still
    counts as opened)."""
    field, _ = DIMENSIONS[by]
    rows = (
        _sends(since, until, creator_id)
        .values(key=Coalesce(F(field), Value("—")))
        .annotate(
            eligible=Count("id"),
            **status_counts(),
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
    *, since: datetime | None = None, until: datetime | None = None, creator_id: int | None = None
) -> list[tuple[str, int]]:
    labels = dict(Rule.choices)
    rows = (
        _sends(since, until, creator_id)
        .filter(status="suppressed")
        .values_list("rule")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return [(labels.get(rule, rule or "—"), n) for rule, n in rows]


def dismiss_reasons(
    *, since: datetime | None = None, until: datetime | None = None, creator_id: int | None = None
) -> list[tuple[str, int]]:
    """In-app dismissals by reason code ("not now" and the rest), most frequent first."""
    labels = dict(DismissReason.choices)
    rows = (
        _sends(since, until, creator_id)
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


def incremental_revenue(
    *,
    window_days: int = 7,
    creator_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Incremental]:
    """Per campaign with a holdout: net revenue per learner within ``window_days`` of the
    decision, treated (queued or sent) against held out, and the difference × treated; with
    ``creator_id``, only the sends that creator sees (``roles.creator_sends``, as in SQL);
    with ``since`` / ``until``, only the decisions made in that time.

    Intent to treat: every treated learner counts, whether the email converted or not; any
    order counts, attributed or not — what the holdout shows is what would have happened
    anyway.
    """
    window = (
        "o.placed_at >= s.created_at AND o.placed_at < s.created_at + make_interval(days => %s)"
    )
    send, campaign = Send._meta.db_table, Campaign._meta.db_table
    order, line = Order._meta.db_table, OrderLine._meta.db_table
    theirs = f"(SELECT id FROM {Course._meta.db_table} WHERE creator_id = %s)"
    mine = (
        f"AND (c.course_id IN {theirs} OR (c.course_id IS NULL AND s.course_id IN {theirs}))"
        if creator_id is not None
        else ""
    )
    sql = f"""
        SELECT c.name,
          SUM(CASE WHEN s.rule = '' THEN 1 ELSE 0 END) AS treated,
          SUM(CASE WHEN s.rule = %s THEN 1 ELSE 0 END) AS held,
          SUM(CASE WHEN s.rule = '' THEN r.revenue ELSE 0 END) AS treated_revenue,
          SUM(CASE WHEN s.rule = %s THEN r.revenue ELSE 0 END) AS held_revenue
        FROM {send} s
        JOIN {campaign} c ON c.id = s.campaign_id
        JOIN (
          SELECT s.id AS send_id, COALESCE(SUM(l.unit_price * l.quantity - l.refunded_amount), 0)
            AS revenue
          FROM {send} s
          LEFT JOIN {order} o ON o.learner_id = s.learner_id AND {window}
          LEFT JOIN {line} l ON l.order_id = o.id
          WHERE s.campaign_id IS NOT NULL AND s.is_test = %s AND (s.rule = '' OR s.rule = %s)
            AND s.created_at >= %s AND s.created_at < %s
          GROUP BY s.id
        ) r ON r.send_id = s.id
        WHERE TRUE {mine}
        GROUP BY c.name
        HAVING SUM(CASE WHEN s.rule = %s THEN 1 ELSE 0 END) > 0
        ORDER BY c.name
    """
    holdout = str(Rule.HOLDOUT)
    params: list[Any] = [
        holdout,
        holdout,
        window_days,
        False,
        holdout,
        since or datetime.min.replace(tzinfo=UTC),
        until or datetime.max.replace(tzinfo=UTC),
    ]
    if creator_id is not None:
        params += [creator_id, creator_id]
    params.append(holdout)
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
    """Bars for one funnel row (``BARS``), each as wide as its share of the eligible."""
    top = row["eligible"] or 1
    return [
        {
            "stage": stage,
            "colour": BAR_COLOURS.get(stage, "#417690"),
            "n": row[stage],
            "width": round(width * row[stage] / top),
            "share": row[stage] / top,
            "y": index * BAR_STEP,
            "text_y": index * BAR_STEP + 9,
            "label_x": 86 + round(width * row[stage] / top),
        }
        for index, stage in enumerate(BARS)
    ]


BAR_STEP = 14
CHART_HEIGHT = BAR_STEP * len(BARS)
BAR_COLOURS = {
    "suppressed": "#c9a227",
    "queued": "#999999",
    "sending": "#999999",
    "failed": "#ba2121",
}
