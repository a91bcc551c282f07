"""Quiet hours in the learner's own time zone, daylight-saving transitions included.

Quiet hours are a span of wall-clock time (21:00 → 08:00 by default, wrapping midnight). A
message due inside them waits for their end, which resolves to the first valid local instant
at or after the end: inside a spring-forward gap (02:30 on a night that jumps 02:00 → 03:00)
that is the jump itself (03:00), and inside a fall-back repeated hour it is the occurrence
still ahead (01:30 of the second pass when it is 01:10 of the second pass) — never the past.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError, OSError):  # an unknown zone keeps UTC's clock
        return ZoneInfo("UTC")


def is_quiet(clock: time, start: time, end: time) -> bool:
    """Whether a local wall-clock time falls inside quiet hours (``start == end``: none)."""
    if start == end:
        return False
    if start > end:  # wraps midnight, e.g. 21:00 → 08:00
        return clock >= start or clock < end
    return start <= clock < end


def local_instant(tz: ZoneInfo, wall: datetime, *, not_before: datetime) -> datetime:
    """The first instant (UTC) at which the zone's clock reads ``wall`` (naive) or later,
    not before ``not_before``: a wall time that a spring-forward gap skips resolves to the
    end of the gap; one that a fall-back hour repeats, to the first occurrence still ahead."""
    candidates = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall:  # it exists
            candidates.append(instant)
    if candidates:
        ahead = [instant for instant in candidates if instant >= not_before]
        return min(ahead) if ahead else not_before
    # A gap: fold 0 reads the wall time with the offset before the jump (an instant after
    # it), fold 1 with the offset after (one before it); the jump lies between. Bisect to the
    # second for the first instant whose local reading is at or past the wall time.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return max(high.replace(microsecond=0), not_before)


def quiet_until(zone: str, now: datetime, start: time, end: time) -> datetime | None:
    """None when ``now`` is outside quiet hours in ``zone``; else when they end (UTC)."""
    tz = _zone(zone)
    local = now.astimezone(tz)
    clock = local.time()
    if not is_quiet(clock, start, end):
        return None
    day: date = local.date()
    if start > end and clock >= start:
        day += timedelta(days=1)
    return local_instant(tz, datetime.combine(day, end), not_before=now)


def next_allowed(zone: str, at: datetime, start: time, end: time) -> datetime:
    """``at``, or the end of the quiet hours it falls in (retries and deferrals use this, so
    a retry scheduled for the evening waits for the morning instead of landing in them)."""
    return quiet_until(zone, at, start, end) or at
