"""The admin's home page: what needs doing now, the last 30 days against the 30 before, and
the funnel — for a marketer; a course creator sees what waits for her and her courses'
funnel only.

Every figure comes from the functions the other pages use (``revenue_metrics``, ``funnel``,
``experiment_results``…), so the home never disagrees with the page it links to. A fixed
number of queries whatever the data (one analysis per running experiment, at most
``EXPERIMENTS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from campaigns.failures import needs_attention
from campaigns.funnel import (
    ACCOUNTED,
    BARS,
    CHART_HEIGHT,
    funnel,
    funnel_chart,
    incremental_revenue,
)
from campaigns.models import Campaign, CampaignStatus, GuardrailPolicy, Send, SendStatus
from campaigns.roles import is_creator_only
from expansion.commerce.metrics import PeriodMetrics, revenue_metrics
from expansion.core.charts import Kind, sparkline, value_text
from experiments.analysis import experiment_results
from experiments.models import Experiment, Status
from learners.models import Segment, SegmentSnapshot

WINDOW = 30  # days a KPI covers; compared with the WINDOW days before
EXPERIMENTS = 10  # running experiments analysed for the home, most recent first


@dataclass(frozen=True)
class Item:
    """One thing that needs doing: how bad (``error`` / ``warning`` / ``info``), what, where."""

    level: str
    title: str
    detail: str = ""
    url: str = ""


@dataclass
class Kpi:
    label: str
    value: str
    previous: str
    change: str  # "+12.3%", "−4.0 pts", "—"
    trend: str  # "up" / "down" / "flat"
    good: bool | None  # is the change good news? None: no comparison
    spark: dict[str, Any] = field(default_factory=dict)
    help: str = ""


def _change(now: float | None, before: float | None, kind: Kind) -> tuple[str, str]:
    if now is None or before is None:
        return "—", "flat"
    if kind == "percent":
        points = (now - before) * 100
        trend = "up" if points > 0.05 else "down" if points < -0.05 else "flat"
        return f"{'+' if points >= 0 else '−'}{abs(points):.1f} pts", trend
    if before == 0:
        return ("new" if now else "—"), ("up" if now else "flat")
    ratio = (now - before) / abs(before)
    trend = "up" if ratio > 0.0005 else "down" if ratio < -0.0005 else "flat"
    return f"{'+' if ratio >= 0 else '−'}{abs(ratio) * 100:.1f}%", trend


def _kpi(
    label: str,
    now: Decimal | float | int | None,
    before: Decimal | float | int | None,
    kind: Kind,
    series: list[Any],
    *,
    higher_is_better: bool = True,
    help: str = "",
) -> Kpi:
    a = float(now) if now is not None else None
    b = float(before) if before is not None else None
    change, trend = _change(a, b, kind)
    good = None if trend == "flat" or change == "—" else (trend == "up") == higher_is_better
    return Kpi(
        label=label,
        value=value_text(a, kind),
        previous=value_text(b, kind),
        change=change,
        trend=trend,
        good=good,
        spark=sparkline(series),
        help=help,
    )


def _sum(rows: list[PeriodMetrics], attr: str) -> Decimal:
    return sum((getattr(r, attr) for r in rows), Decimal(0))


def _attach(row: PeriodMetrics) -> float | None:
    rates = [float(v) for v in row.attach_rates.values() if v is not None]
    return sum(rates) / len(rates) if rates else None


def kpis(*, now: datetime) -> list[Kpi]:
    """Revenue, AOV, expansion MRR, conversions and incremental revenue over the last
    ``WINDOW`` days against the ``WINDOW`` before (sparklines: by day); NRR and attach rate of
    the last full month against the month before (sparklines: twelve months)."""
    today = now.date()
    days = revenue_metrics(period="day", first=today - timedelta(days=2 * WINDOW - 1), last=today)
    before, current = days[:WINDOW], days[WINDOW:]
    revenue = [_sum(before, "revenue"), _sum(current, "revenue")]
    orders = [sum(r.orders for r in before), sum(r.orders for r in current)]
    aov = [revenue[i] / orders[i] if orders[i] else None for i in (0, 1)]
    expansion = [_sum(before, "mrr_expansion"), _sum(current, "mrr_expansion")]
    first_month = (today.replace(day=1) - timedelta(days=335)).replace(day=1)
    months = revenue_metrics(period="month", first=first_month, last=today)[:-1]  # full ones
    last, prior = (months[-1], months[-2]) if len(months) >= 2 else (None, None)
    converted = _conversions(now=now)
    incremental = [
        sum(
            (
                i.incremental_revenue
                for i in incremental_revenue(
                    window_days=GuardrailPolicy.load().attribution_days,
                    since=now - timedelta(days=WINDOW * (2 - k)),
                    until=now - timedelta(days=WINDOW * (1 - k)),
                )
            ),
            Decimal(0),
        )
        for k in (0, 1)
    ]
    month = last.period_start.strftime("%B") if last else ""
    return [
        _kpi(
            "Revenue",
            revenue[1],
            revenue[0],
            "money",
            [r.revenue for r in current],
            help="Net of refunds, last 30 days",
        ),
        _kpi(
            "Expansion MRR",
            expansion[1],
            expansion[0],
            "money",
            [r.mrr_expansion for r in current],
            help="Upsells, add-ons and seats of paying customers, last 30 days",
        ),
        _kpi(
            f"NRR ({month})" if month else "NRR",
            last.nrr if last else None,
            prior.nrr if prior else None,
            "percent",
            [r.nrr for r in months],
            help="Net revenue retention of the last full month, against the month before",
        ),
        _kpi(
            "AOV",
            aov[1],
            aov[0],
            "money",
            [r.aov for r in current],
            help="Average order value, last 30 days",
        ),
        _kpi(
            f"Attach rate ({month})" if month else "Attach rate",
            _attach(last) if last else None,
            _attach(prior) if prior else None,
            "percent",
            [_attach(r) for r in months],
            help="Buyers of a course who also bought its add-on (mean over add-ons)",
        ),
        _kpi(
            "Conversions",
            converted[1],
            converted[0],
            "number",
            converted[2],
            help="Campaign sends followed by an attributed order, last 30 days",
        ),
        _kpi(
            "Incremental revenue",
            incremental[1],
            incremental[0],
            "money",
            [],
            help="Beyond the holdout: campaigns' treated against held-out learners, "
            "decided in the last 30 days",
        ),
    ]


def _conversions(*, now: datetime) -> tuple[int, int, list[int]]:
    """Campaign sends converted in the window before, in this window, and by day of this
    window: one grouped query."""
    start = now - timedelta(days=2 * WINDOW)
    rows = dict(
        Send.objects.filter(
            converted_at__gte=start, converted_at__lt=now, campaign__isnull=False, is_test=False
        )
        .annotate(day=TruncDate("converted_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    middle = (now - timedelta(days=WINDOW)).date()
    before = sum(n for day, n in rows.items() if day < middle)
    current = sum(n for day, n in rows.items() if day >= middle)
    series = [rows.get(middle + timedelta(days=i), 0) for i in range(WINDOW + 1)]
    return before, current, series


def attention(*, user: Any, now: datetime) -> list[Item]:
    """What needs doing now, worst first: the mail server down, campaigns paused by
    failures, sends failing, campaigns waiting for approval, experiments that tripped a
    guardrail or a sample-ratio alarm or reached their sample, segments that emptied. A
    creator: the campaigns waiting for her and her paused ones."""
    items: list[Item] = []
    base = needs_attention(user=user, now=now)
    if base.circuit is not None:
        circuit = base.circuit
        since = f" since {_at(circuit.opened_at)}" if circuit.opened_at else ""
        retry = (
            f"next try at {timezone.localtime(base.next_try).strftime('%H:%M:%S')}"
            if base.next_try
            else "being tried again now"
        )
        items.append(
            Item(
                "error",
                "Mail server unreachable: no email is leaving" + since,
                f"{circuit.failures} failed attempt{'s' if circuit.failures != 1 else ''} in a "
                f"row, {retry}. Queued sends wait and leave when it answers again; nothing is "
                "lost." + (f" Last error: {circuit.last_error}" if circuit.last_error else ""),
            )
        )
    for campaign in base.campaigns:
        since = f" since {_at(campaign.paused_at)}" if campaign.paused_at else ""
        items.append(
            Item(
                "error",
                f"{campaign.name}: paused by failures{since}",
                f"{campaign.paused_reason} Fix the cause, then Retry failed sends and Resume on "
                "its page.",
                reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            )
        )
    creator = is_creator_only(user)
    if not creator and user.has_perm("campaigns.view_send"):
        items += _failing_sends(now=now)
    waiting = Campaign.objects.filter(status=CampaignStatus.IN_REVIEW).select_related(
        "course", "course__creator"
    )
    if creator:
        waiting = waiting.filter(course__creator=user)
    for campaign in waiting.order_by("updated_at")[:20]:
        reviewer = campaign.course.creator if campaign.course and campaign.course.creator else None
        items.append(
            Item(
                "warning" if creator else "info",
                f"{campaign.name}: waiting for approval",
                "Waiting for you to approve or send back."
                if creator
                else f"Waiting for {reviewer.get_username() if reviewer else 'a reviewer'} "
                f"since {_at(campaign.updated_at)}.",
                reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            )
        )
    if creator:
        return items
    if user.has_perm("experiments.view_experiment"):
        items += _experiments(now=now)
    if user.has_perm("learners.view_segment"):
        items += _emptied_segments(now=now)
    return items


def _at(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _failing_sends(*, now: datetime) -> list[Item]:
    rows = list(
        Send.objects.filter(
            status=SendStatus.FAILED,
            is_test=False,
            created_at__gte=now - timedelta(days=1),
            campaign__isnull=False,
        )
        .values_list("campaign__name")
        .annotate(n=Count("id"))
        .order_by("-n")[:5]
    )
    if not rows:
        return []
    total = sum(n for _, n in rows)
    by = ", ".join(f"{name}: {n}" for name, n in rows)
    return [
        Item(
            "error",
            f"{total} send{'s' if total != 1 else ''} failed in the last 24 hours",
            f"{by}. Each keeps its reason on the send.",
            reverse("admin:campaigns_send_changelist") + "?status__exact=failed",
        )
    ]


def _experiments(*, now: datetime) -> list[Item]:
    items = []
    running = Experiment.objects.filter(status=Status.RUNNING).order_by("-started_at")
    for experiment in running[:EXPERIMENTS]:
        url = reverse("admin:experiments_experiment_results", args=[experiment.pk])
        results = experiment_results(experiment=experiment, now=now)
        worse = sorted(
            {
                f"{arm['name']}: {name}"
                for arm in results["arms"]
                for name, g in ((arm.get("vs_control") or {}).get("guardrails") or {}).items()
                if g.get("worse")
            }
        )
        if worse:
            items.append(
                Item(
                    "error",
                    f"{experiment.name}: a guardrail is worse",
                    "; ".join(worse) + " (significantly worse than the control).",
                    url,
                )
            )
        if results["sample_ratio_mismatch"]["flagged"]:
            srm = results["sample_ratio_mismatch"]
            items.append(
                Item(
                    "error",
                    f"{experiment.name}: sample ratio mismatch",
                    f"The arms' sizes are off their plan (p = {srm['p_value']:.4f}): check the "
                    "assignment before reading the results.",
                    url,
                )
            )
        if results["sample_size_reached"]:
            items.append(
                Item(
                    "info",
                    f"{experiment.name}: ready to decide",
                    "The planned sample is reached with its conversion windows closed.",
                    url,
                )
            )
    return items


def _emptied_segments(*, now: datetime) -> list[Item]:
    had_members = SegmentSnapshot.objects.filter(
        segment=OuterRef("pk"), size__gt=0, day__gte=(now - timedelta(days=30)).date()
    )
    emptied = Segment.objects.filter(
        Exists(had_members), is_active=True, size=0, refreshed_at__isnull=False
    ).order_by("name")[:10]
    return [
        Item(
            "warning",
            f"Segment {segment.name} is empty",
            "It had members in the last 30 days; campaigns aimed at it reach no one.",
            reverse("admin:learners_segment_change", args=[segment.pk]),
        )
        for segment in emptied
    ]


def funnel_total(*, now: datetime, creator_id: int | None) -> dict[str, Any] | None:
    """Every campaign's sends of the last ``WINDOW`` days as one funnel row (with its
    chart), or None when there are none."""
    rows = funnel(by="campaign", since=now - timedelta(days=WINDOW), creator_id=creator_id)
    if not rows:
        return None
    total: dict[str, Any] = {"key": "All campaigns"}
    for name in (*BARS, "revenue", "dismissed"):
        total[name] = sum(row[name] for row in rows)
    total["bars"] = funnel_chart(total)
    total["chart_height"] = CHART_HEIGHT
    total["accounted"] = ACCOUNTED
    return total


def home_context(*, user: Any, now: datetime | None = None) -> dict:
    """Everything the home page shows ``user``; only what their role may see."""
    now = now or timezone.now()
    creator = is_creator_only(user)
    sees_revenue = not creator and user.has_perm("expansion.view_order")
    # Staff without a role (no campaign to look after) see the menu only.
    involved = user.has_perm("campaigns.view_campaign")
    return {
        "attention": attention(user=user, now=now) if involved else [],
        "show_attention": involved,
        "kpis": kpis(now=now) if sees_revenue else [],
        "funnel": funnel_total(now=now, creator_id=user.pk if creator else None)
        if user.has_perm("campaigns.view_campaign")
        else None,
        "window": WINDOW,
        "is_creator": creator,
    }
