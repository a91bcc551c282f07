"""IANA time zones: the set the product accepts (learners' zones, quiet hours, API offsets)."""

import zoneinfo
from functools import cache


@cache
def available_time_zones() -> frozenset[str]:
    """Every IANA zone name this machine knows; read once per process."""
    return frozenset(zoneinfo.available_timezones())
