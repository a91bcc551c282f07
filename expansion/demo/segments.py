"""The demo's saved segments: who a marketer would target first."""

from __future__ import annotations

from learners.models import Segment

DEMO_SEGMENTS = [
    (
        "Expansion-ready",
        "High LPS, reachable, no open ticket (seed 000: test premium offers here).",
        {
            "all": [
                {"field": "band", "op": "in", "value": ["high"]},
                {"field": "reachable"},
                {"not": {"field": "flag", "value": "open_ticket"}},
            ]
        },
    ),
    (
        "Finish to unlock",
        "Mid LPS: 'finish to unlock' incentives before any upsell.",
        {"field": "band", "op": "in", "value": ["mid"]},
    ),
    (
        "Stalled learners",
        "Were active 3+ times a week, now 10+ days silent.",
        {"field": "flag", "value": "stall"},
    ),
    (
        "Completed SQL Basics",
        "Cross-sell candidates 2–4 weeks after completion.",
        {"field": "completed", "value": "data-1"},
    ),
]


def demo_segments() -> None:
    """Save ``DEMO_SEGMENTS`` (a name already taken is left as it is)."""
    Segment.objects.bulk_create(
        [
            Segment(name=name, description=description, definition=definition)
            for name, description, definition in DEMO_SEGMENTS
        ],
        ignore_conflicts=True,
    )
