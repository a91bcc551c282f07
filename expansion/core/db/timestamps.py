"""Timestamps read with psycopg's C parser.

Django registers its own loader for ``timestamptz`` on every connection (to set its time zone
on the values), a subclass of psycopg's pure-Python loader: 3.3 µs a value, where psycopg's C
loader (psycopg[binary]) takes 0.2 µs and this wrapper 1.1 µs. A chunk of 200 emails loads
~4,000 of them (bench/delivery.py); every admin list loads a few per row. The values are the
same: parsed in the session's time zone (Django sets it to the connection's) and given
Django's ``tzinfo``, as Django's loader does.
"""

from __future__ import annotations

import functools
from datetime import tzinfo
from typing import Any

from psycopg.adapt import Loader

try:
    from psycopg_binary._psycopg import TimestamptzLoader as _CLoader  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the pure-Python psycopg: Django's loader stays
    _CLoader = None


@functools.lru_cache(maxsize=8)
def _loader(zone: tzinfo) -> type[Loader]:
    class FastTzLoader(Loader):
        timezone = zone  # Django compares it with the connection's for each cursor

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._parse = _CLoader(oid, context).load

        def load(self, data: Any) -> Any:
            return self._parse(data).replace(tzinfo=zone)

    return FastTzLoader


def timestamps_fast(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: the C-backed loader for this connection's
    ``timestamptz`` values (text format, what Django's cursors read)."""
    if connection.vendor != "postgresql" or _CLoader is None or connection.timezone is None:
        return
    connection.connection.adapters.register_loader("timestamptz", _loader(connection.timezone))
