"""The reason a learner reads ("Why you are seeing this"), in plain words.

A send records the marketer's reason: what the trigger saw, in the third person, with the
learner's score ("completed the final module of SQL Basics; LPS 70"). The learner's message
and in-app card say it to them, without score names, segment names or bands: "You finished
SQL Basics yesterday." Each trigger's wording is matched here; anything unmatched keeps its
words, in the second person, with every score part removed — and a sentence that still names
a score falls back to a neutral one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

from django.utils import timezone

from .quiet_hours import learner_zone

NEUTRAL = "We picked this for you from your recent activity."

# Score names and bands the learner must never read.
_JARGON = re.compile(r"\b(LPS|RFM|band|score card|segment|cohort|tier)\b", re.I)
_SCORE_PARTS = re.compile(r"\s*(;|\(band\b)[^;]*?(?=;|$)", re.I)


def _when(at: datetime | None, now: datetime, zone: str) -> str:
    """ " today", " yesterday", " on 3 December" (the learner's calendar), or "" unknown."""
    if at is None:
        return ""
    tz = learner_zone(zone)
    days = (now.astimezone(tz).date() - at.astimezone(tz).date()).days
    if days <= 0:
        return " today"
    if days == 1:
        return " yesterday"
    day = at.astimezone(tz)
    return f" on {day.day} {day:%B}"


def _renewal(text: str) -> str:
    """ "Your plan renews on 10 December 2026." from the recorded date and time."""
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return "Your plan renews soon."
    return f"Your plan renews on {day.day} {day:%B %Y}."


# (pattern over the marketer's reason without its score parts, the learner's sentence)
_RULES: list[tuple[re.Pattern, Callable[[re.Match, str], str]]] = [
    (
        re.compile(r"^completed the final module of (?P<c>.+)$"),
        lambda m, when: f"You finished {m['c']}{when}.",
    ),
    (
        re.compile(r"^completed (?P<c>.+) a few weeks ago$"),
        lambda m, when: f"You finished {m['c']} a few weeks ago.",
    ),
    (
        re.compile(r"^scored (?P<v>\S+) on an assessment mid-way through (?P<c>.+)$"),
        lambda m, when: f"You scored {m['v']} on an assessment in {m['c']}{when}.",
    ),
    (
        re.compile(r"^was active weekly, silent since their last visit$"),
        lambda m, when: "We have missed you since your last visit.",
    ),
    (
        re.compile(r"^asked in the community what to learn next$"),
        lambda m, when: f"You asked in the community what to learn next{when}.",
    ),
    (
        re.compile(r"^used (?P<n>\d+)% of the plan's quota$"),
        lambda m, when: f"Your plan has used {m['n']} % of its quota.",
    ),
    (
        re.compile(r"^reported (?P<n>\d+)% of their (?P<what>.+) limit used$"),
        lambda m, when: f"You have used {m['n']} % of your {m['what']} limit.",
    ),
    (
        re.compile(r"^every seat in use \((?P<n>\d+)\)$"),
        lambda m, when: f"Every seat of your plan is in use ({m['n']}).",
    ),
    (
        re.compile(r"^(?P<n>\d+) (?P<what>.+) in (?P<d>\d+) days$"),
        lambda m, when: f"You had {m['n']} {m['what']} in the last {m['d']} days.",
    ),
    (
        re.compile(r"^tried a premium feature (?P<f>.+)$"),
        lambda m, when: f"You tried the premium feature {m['f']}{when}.",
    ),
    (
        re.compile(r"^plan renews on (?P<d>.+)$"),
        lambda m, when: _renewal(m["d"]),
    ),
    (re.compile(r"^just bought$"), lambda m, when: "Thank you for your recent purchase."),
    (re.compile(r"^joined the segment .+$"), lambda m, when: NEUTRAL),
]


def learner_reason(
    reason: str, *, at: datetime | None = None, now: datetime | None = None, zone: str = ""
) -> str:
    """``reason`` (a send's, the marketer's words) as the learner reads it. ``at``: when it
    happened (the send's creation), ``zone``: the learner's time zone, for "yesterday"."""
    now = now or timezone.now()
    detail = _SCORE_PARTS.sub("", reason or "").strip().rstrip(".")
    if not detail:
        return NEUTRAL
    when = _when(at, now, zone)
    for pattern, sentence in _RULES:
        match = pattern.match(detail)
        if match is not None:
            text = sentence(match, when)
            break
    else:
        text = re.sub(r"\btheir\b", "your", detail)
        first = text.split(" ", 1)[0]
        if first.islower() and first.endswith("ed"):
            text = f"You {text}"
        text = text[:1].upper() + text[1:] + "."
    return NEUTRAL if _JARGON.search(text) else text
