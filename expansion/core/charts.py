"""Small server-rendered SVG charts for the admin (no JavaScript, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Bar:
    label: str
    value: float
    x: float = 0
    y: float = 0
    width: float = 0
    height: float = 0


def bar_chart(
    items: Sequence[tuple[str, float]], *, width: int = 520, height: int = 140
) -> dict[str, object]:
    """Layout for ``learners/bar_chart.svg.html``: bars scaled to the largest value."""
    peak = max((value for _, value in items), default=0) or 1
    gap = 4
    slot = width / max(len(items), 1)
    bars = []
    for index, (label, value) in enumerate(items):
        bar_height = (height - 20) * value / peak
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(index * slot + gap / 2, 1),
                y=round(height - 16 - bar_height, 1),
                width=round(slot - gap, 1),
                height=round(bar_height, 1),
            )
        )
    return {"bars": bars, "width": width, "height": height, "peak": peak}
