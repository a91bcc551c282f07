"""Quiet hours in the learner's own time zone, daylight-saving transitions included.

Quiet hours are a span of wall-clock time (21:00 → 08:00 by default, wrapping midnight). A
message due inside them waits for their end, which resolves to the first valid local instant
at or after the end: inside a spring-forward gap (02:30 on a night that jumps 02:00 → 03:00)
that is the jump itself (03:00), and inside a fall-back repeated hour it is the occurrence
still ahead (01:30 of the second pass when it is 01:10 of the second pass) — never the past.

An evaluation reads every zone's clock from one temporary table (``zone_table_create``): when
a message due now may go in that zone, and the bounds of that moment's local day and week,
which the calendar frequency caps count in (``campaigns.caps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection

from expansion.core.timezones import available_time_zones

from .models import GuardrailPolicy

# The temporary table of one evaluation's zone clocks (one row per zone and channel).
ZONE_TABLE = "evaluation_zone"
MIN_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def learner_zone(name: str) -> ZoneInfo:
    """A learner's time zone by name; an empty or unknown one is UTC (the site's clock)."""
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
    tz = learner_zone(zone)
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


@dataclass(frozen=True)
class ZoneClock:
    """For one time zone: when a message due now may go, and that local day's and week's
    bounds (UTC)."""

    send_at: datetime
    day_start: datetime
    day_end: datetime
    week_start: datetime
    week_end: datetime


def zone_clock(zone: str, now: datetime, quiet_start: time, quiet_end: time) -> ZoneClock:
    """Quiet hours hold in the learner's zone: a send due inside them waits for their end
    (the first valid local instant, daylight-saving transitions included: ``local_instant``);
    the day and week are those of the moment it may go."""
    tz = ZoneInfo(zone)
    send_at = quiet_until(zone, now, quiet_start, quiet_end) or now
    send_local = send_at.astimezone(tz)

    def midnight(day: date) -> datetime:
        return local_instant(tz, datetime.combine(day, time(0)), not_before=MIN_UTC)

    monday = send_local.date() - timedelta(days=send_local.weekday())
    return ZoneClock(
        send_at.astimezone(UTC),
        midnight(send_local.date()),
        midnight(send_local.date() + timedelta(days=1)),
        midnight(monday),
        midnight(monday + timedelta(days=7)),
    )


def zone_table_create(*, now: datetime, policy: GuardrailPolicy) -> None:
    """Every time zone's clock for this evaluation, as a temporary table to join.

    One row per zone and channel: when a message due now may go (email waits for the end of
    quiet hours; in-app offers keep none, they are shown while the learner is in the app) and
    the bounds of that moment's local day and week. Computed here for every zone a learner
    can have (~600, a few ms) rather than per learner.
    """
    adapt = connection.ops.adapt_datetimefield_value
    rows = []
    for zone in sorted(available_time_zones()):
        for channel, quiet_end in (("email", policy.quiet_end), ("in_app", policy.quiet_start)):
            clock = zone_clock(zone, now, policy.quiet_start, quiet_end)
            rows.append(
                (
                    zone,
                    channel,
                    *(
                        adapt(value)
                        for value in (
                            clock.send_at,
                            clock.day_start,
                            clock.day_end,
                            clock.week_start,
                            clock.week_end,
                        )
                    ),
                )
            )
    stamp = connection.data_types["DateTimeField"]
    columns = ", ".join(
        f"{name} {stamp}" for name in ("send_at", "day_start", "day_end", "week_start", "week_end")
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {ZONE_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {ZONE_TABLE} (zone varchar(64), channel varchar(10), "
            f"{columns}, PRIMARY KEY (zone, channel))"
        )
        cursor.executemany(f"INSERT INTO {ZONE_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)


def zone_table_drop() -> None:
    """The zone table goes (at the end of an evaluation, in its transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {ZONE_TABLE}")
