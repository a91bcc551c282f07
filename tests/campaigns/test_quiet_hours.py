"""Quiet hours end at the first valid local instant after their end — across daylight-saving
gaps and repeated hours, never in the past — for evaluation and dispatch alike."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.quiet_hours import is_quiet, next_allowed, quiet_until, zone_clock

NEW_YORK = "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_an_evening_send_waits_for_the_morning():
    # 21:30 in London (BST) on 15 June → 08:00 on the 16th.
    assert quiet_until("Europe/London", utc(2026, 6, 15, 20, 30), time(21), time(8)) == utc(
        2026, 6, 16, 7, 0
    )
    assert quiet_until("Europe/London", utc(2026, 6, 15, 6, 30), time(21), time(8)) == utc(
        2026, 6, 15, 7, 0
    )
    assert quiet_until("Europe/London", utc(2026, 6, 15, 9, 0), time(21), time(8)) is None
    assert quiet_until("Europe/London", utc(2026, 6, 15, 9, 0), time(8), time(8)) is None


def test_an_end_inside_a_spring_forward_gap_is_the_end_of_the_gap():
    # New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT (07:00 UTC). Quiet until 02:30.
    at = utc(2026, 3, 8, 6, 50)  # 01:50 EST
    assert quiet_until(NEW_YORK, at, time(22), time(2, 30)) == utc(2026, 3, 8, 7, 0)
    # London, 29 March 2026: 01:00 GMT jumps to 02:00 BST. Quiet until 01:30 → 02:00 BST.
    assert quiet_until("Europe/London", utc(2026, 3, 29, 0, 30), time(22), time(1, 30)) == utc(
        2026, 3, 29, 1, 0
    )


def test_an_end_inside_a_repeated_hour_is_the_occurrence_still_ahead():
    # New York, 1 November 2026: 02:00 EDT falls back to 01:00 EST; 01:00–02:00 happens twice.
    first_pass = utc(2026, 11, 1, 5, 10)  # 01:10 EDT
    second_pass = utc(2026, 11, 1, 6, 10)  # 01:10 EST
    assert quiet_until(NEW_YORK, first_pass, time(22), time(1, 30)) == utc(2026, 11, 1, 5, 30)
    assert quiet_until(NEW_YORK, second_pass, time(22), time(1, 30)) == utc(2026, 11, 1, 6, 30)
    clock = zone_clock(NEW_YORK, second_pass, time(22), time(1, 30))
    assert clock.send_at == utc(2026, 11, 1, 6, 30)


@pytest.mark.parametrize(
    "zone", [NEW_YORK, "Europe/London", "America/Santiago", "Australia/Lord_Howe", "Asia/Tehran"]
)
def test_never_the_past_and_never_inside_quiet_hours_over_a_year(zone):
    """Every 10 minutes of 2026 in zones with odd transitions (Santiago at midnight, Lord Howe
    by half an hour): the resolved time is never before now and never inside quiet hours."""
    tz = ZoneInfo(zone)
    windows = [(time(22), time(1, 30)), (time(21), time(8)), (time(23, 30), time(0, 15))]
    at = utc(2026, 1, 1)
    while at < utc(2027, 1, 1):
        for start, end in windows:
            until = next_allowed(zone, at, start, end)
            assert until >= at
            assert not is_quiet(until.astimezone(tz).time(), start, end), (zone, at, until)
            assert until - at <= timedelta(hours=12)
        at += timedelta(minutes=10) if at.month in (3, 4, 9, 10, 11) else timedelta(hours=1)
