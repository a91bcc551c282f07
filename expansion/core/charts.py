"""Server-rendered SVG charts for the admin (no JavaScript, no CDN, nothing for the CSP to
allow): bars, lines with intervals, dots with intervals, sparklines.

Every chart has a value axis with round ticks and its unit (a number, money in the
deployment's currency, or a percentage), the value of each bar or point written on it or in
its tooltip, a legend where there is more than one series, and a ``viewBox`` so it shrinks
with the page (``expansion/charts/*.svg.html``).

A layout function returns plain data (coordinates, labels); the templates only draw it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from django.conf import settings

Kind = Literal["number", "money", "percent"]

COLOURS = ("#417690", "#ba2121", "#c9a227", "#5b8a3a", "#8a5b9c", "#2a9d8f")
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}


def currency_symbol(code: str | None = None) -> str:
    """The deployment's currency (``EXPANSION_CURRENCY``) as written before an amount: "€"
    for EUR, else the code and a space ("CHF ")."""
    code = str(code or getattr(settings, "EXPANSION_CURRENCY", "EUR")).upper()
    return _SYMBOLS.get(code, f"{code} ")


def value_text(value: float | Decimal | int | None, kind: Kind = "number") -> str:
    """``value`` as a reader expects it: "1,234" / "12.5"; money "€1,234" (below 1,000 with
    cents: "€12.50"); a fraction as a percentage, "89.4%". None: "—". A ``Decimal`` is
    written exactly, however large (money is decimal end to end)."""
    if value is None:
        return "—"
    number = value if isinstance(value, Decimal) else Decimal(str(float(value)))
    if not number.is_finite():
        return "—"
    sign = "−" if number < 0 else ""
    number = abs(number)
    if kind == "percent":
        scaled = number * 100
        return f"{sign}{scaled:.1f}%" if scaled < 1000 else f"{sign}{scaled:,.0f}%"
    if kind == "money":
        amount = f"{number:,.0f}" if number >= 1000 else f"{number:,.2f}"
        return f"{sign}{currency_symbol()}{amount}"
    if number >= 100 or number == number.to_integral_value():
        return f"{sign}{number:,.0f}"
    return f"{sign}{number:,.2f}".rstrip("0").rstrip(".")


def _places(step: float) -> int:
    """The decimals a tick step needs (0.25 → 2, 5 → 0), at most 4."""
    return next((p for p in range(5) if abs(round(step, p) - step) < 1e-9 * max(1, step)), 4)


def axis_text(value: float, kind: Kind, step: float) -> str:
    """A tick's label: as short as the step allows ("€12k", "40%", "0.25")."""
    sign = "−" if value < -1e-12 else ""
    value = abs(value)
    if kind == "percent":
        return f"{sign}{value * 100:.{_places(step * 100)}f}%"
    prefix = currency_symbol() if kind == "money" else ""
    if value >= 1_000_000 and step >= 100_000:
        text = f"{value / 1_000_000:g}M"
    elif value >= 1000 and step >= 100:
        text = f"{value / 1000:g}k"
    elif step < 1:
        text = f"{value:.{_places(step)}f}"
    else:
        text = f"{value:,.0f}"
    return f"{sign}{prefix}{text}"


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering ``low`` … ``high`` (steps of 1, 2, 2.5 or 5 × 10ⁿ), about
    ``count`` of them; the first ≤ low and the last ≥ high."""
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1)
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class Bar:
    label: str
    value: float
    text: str
    x: float
    y: float
    width: float
    height: float
    colour: str
    show_label: bool
    label_x: float
    value_y: float


@dataclass
class Frame:
    """The plot area inside the chart and its value axis."""

    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    low: float
    high: float
    ticks: list[Tick] = field(default_factory=list)

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        return round(self.bottom - (self.bottom - self.top) * (value - self.low) / span, 1)


def _frame(
    values: Sequence[float],
    kind: Kind,
    width: int,
    height: int,
    *,
    left: int = 58,
    bottom_gap: int = 30,
    top: int = 18,
    zero: bool = True,
) -> Frame:
    low, high = min(values, default=0.0), max(values, default=0.0)
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if kind == "percent" and zero and high <= 0.1 and low >= 0:
        high = max(high, 0.01)
    ticks = nice_ticks(low, high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    frame = Frame(
        width=width,
        height=height,
        left=left,
        right=width - 8,
        top=top,
        bottom=height - bottom_gap,
        low=ticks[0],
        high=ticks[-1],
    )
    frame.ticks = [Tick(pos=frame.y(t), label=axis_text(t, kind, step)) for t in ticks]
    return frame


def bar_chart(
    items: Sequence[tuple[str, float | Decimal | int | None]],
    *,
    kind: Kind = "number",
    title: str = "",
    width: int = 640,
    height: int = 200,
    colour: str = COLOURS[0],
) -> dict[str, object]:
    """Vertical bars with a value axis from zero, each bar's value above it (in its tooltip
    when the bars are too narrow for text), and every label that fits under the axis."""
    values = [float(v or 0) for _, v in items]
    frame = _frame(values, kind, width, height)
    plot = frame.right - frame.left
    slot = plot / max(len(items), 1)
    gap = min(8.0, slot * 0.2)
    every = max(1, math.ceil(46 / slot))  # a label needs about 46 px
    base = frame.y(0.0)
    bars = []
    for index, ((label, _), value) in enumerate(zip(items, values, strict=True)):
        top = frame.y(value)
        bars.append(
            Bar(
                label=label,
                value=value,
                text=value_text(value, kind),
                x=round(frame.left + index * slot + gap / 2, 1),
                y=min(top, base),
                width=round(slot - gap, 1),
                height=round(abs(base - top), 1),
                colour=colour,
                show_label=index % every == 0,
                label_x=round(frame.left + index * slot + slot / 2, 1),
                value_y=round(min(top, base) - 4, 1),
            )
        )
    return {
        "frame": frame,
        "bars": bars,
        "values_fit": slot >= 34,
        "title": title,
        "width": width,
        "height": height,
        "empty": not any(values),
        "label_y": frame.bottom + 14,
    }


@dataclass
class Series:
    name: str
    values: Sequence[float | None]
    low: Sequence[float | None] | None = None
    high: Sequence[float | None] | None = None
    dashed: bool = False


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    kind: Kind = "number",
    title: str = "",
    width: int = 640,
    height: int = 220,
    reference: float | None = None,
    marker: int | None = None,
    marker_label: str = "",
) -> dict[str, object]:
    """One line per series over the ``labels`` (x), with its interval as a shaded band when
    given (``low``/``high``), a dashed reference line (e.g. "no lift" at 0), an optional
    vertical marker at index ``marker``, round ticks on both axes and a legend. A series of
    one point is drawn as a dot with its interval as a whisker."""
    values = [
        v
        for s in series
        for seq in (s.values, s.low or (), s.high or ())
        for v in seq
        if v is not None
    ]
    if reference is not None:
        values.append(reference)
    frame = _frame(values, kind, width, height, zero=False)
    count = len(labels)
    step = (frame.right - frame.left - 16) / max(count - 1, 1)

    def x(i: int) -> float:
        return round(
            frame.left + 8 + (i * step if count > 1 else (frame.right - frame.left) / 2 - 8), 1
        )

    lines = []
    for index, s in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = [
            (x(i), frame.y(v), value_text(v, kind), labels[i])
            for i, v in enumerate(s.values)
            if v is not None
        ]
        band = ""
        whiskers = []
        if s.low is not None and s.high is not None:
            upper = [(x(i), frame.y(h)) for i, h in enumerate(s.high) if h is not None]
            lower = [(x(i), frame.y(lo)) for i, lo in enumerate(s.low) if lo is not None]
            if len(upper) > 1 and len(upper) == len(lower):
                band = " ".join(f"{a},{b}" for a, b in [*upper, *reversed(lower)])
            whiskers = (
                [
                    (x(i), frame.y(lo), frame.y(h))
                    for i, (lo, h) in enumerate(zip(s.low, s.high, strict=True))
                    if lo is not None and h is not None
                ]
                if len(upper) <= 1
                else []
            )
        lines.append(
            {
                "name": s.name,
                "colour": colour,
                "points": " ".join(f"{a},{b}" for a, b, _, _ in points),
                "dots": [
                    {"x": a, "y": b, "text": f"{s.name}, {lab}: {t}"} for a, b, t, lab in points
                ],
                "band": band,
                "whiskers": whiskers,
                "dashed": s.dashed,
                "last": points[-1][2] if points else "—",
            }
        )
    every = max(1, math.ceil(count / max(1, (frame.right - frame.left) // 70)))
    x_ticks = [Tick(pos=x(i), label=labels[i]) for i in range(count) if i % every == 0]
    if count > 1 and (count - 1) % every:
        x_ticks.append(Tick(pos=x(count - 1), label=labels[-1]))
    return {
        "frame": frame,
        "lines": lines,
        "x_ticks": x_ticks,
        "reference": frame.y(reference) if reference is not None else None,
        "marker": {"x": x(marker), "label": marker_label} if marker is not None else None,
        "title": title,
        "width": width,
        "height": height,
        "label_y": frame.bottom + 14,
        "empty": not count,
    }


def interval_chart(
    rows: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    kind: Kind = "percent",
    title: str = "",
    width: int = 640,
    row_height: int = 30,
    reference: float | None = None,
) -> dict[str, object]:
    """One row per label: the estimate as a dot, its interval as a whisker, on a shared
    horizontal axis with round ticks (rows given as (label, value, low, high))."""
    values = [v for _, *vals in rows for v in vals if v is not None]
    if reference is not None:
        values.append(reference)
    low, high = min(values, default=0.0), max(values, default=0.0)
    if kind == "percent" and low >= 0:
        low = 0.0
    ticks = nice_ticks(low, high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    left, right = 170.0, width - 16.0
    span = (ticks[-1] - ticks[0]) or 1.0

    def x(v: float) -> float:
        return round(left + (right - left) * (v - ticks[0]) / span, 1)

    height = len(rows) * row_height + 36
    drawn = []
    for index, (label, value, lo, hi) in enumerate(rows):
        y = index * row_height + 18
        drawn.append(
            {
                "label": label[:26],
                "y": y,
                "x": x(value) if value is not None else None,
                "x1": x(lo) if lo is not None else None,
                "x2": x(hi) if hi is not None else None,
                "text": value_text(value, kind)
                + (f" [{value_text(lo, kind)}, {value_text(hi, kind)}]" if lo is not None else ""),
                "colour": COLOURS[index % len(COLOURS)],
            }
        )
    return {
        "rows": drawn,
        "ticks": [Tick(pos=x(t), label=axis_text(t, kind, step)) for t in ticks],
        "reference": x(reference) if reference is not None else None,
        "axis_y": len(rows) * row_height + 6,
        "left": left,
        "right": right,
        "title": title,
        "width": width,
        "height": height,
    }


def sparkline(
    values: Sequence[float | Decimal | int | None], *, width: int = 120, height: int = 28
) -> dict[str, object]:
    """A small line of ``values`` (oldest first) with its last point marked; no axes (a KPI
    tile writes the figure beside it)."""
    numbers = [float(v) for v in values if v is not None]
    if len(numbers) < 2:
        return {"points": "", "width": width, "height": height}
    low, high = min(numbers), max(numbers)
    span = (high - low) or 1.0
    step = (width - 4) / (len(numbers) - 1)
    points = [
        (round(2 + i * step, 1), round(height - 3 - (height - 6) * (v - low) / span, 1))
        for i, v in enumerate(numbers)
    ]
    return {
        "points": " ".join(f"{a},{b}" for a, b in points),
        "last_x": points[-1][0],
        "last_y": points[-1][1],
        "width": width,
        "height": height,
    }
