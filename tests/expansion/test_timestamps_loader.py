"""Timestamps come back from PostgreSQL through psycopg's C parser, with the same values and
time zone as Django's own loader gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.adapt import Loader
from psycopg.pq import Format

from expansion.core.db.timestamps import _loader
from learners.models import Event
from tests.factories.learners import EventFactory


@pytest.mark.django_db
def test_the_connection_reads_timestamptz_with_the_fast_loader():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, Format.TEXT)
    assert loader is _loader(connection.timezone)
    assert not issubclass(loader, BaseTzLoader)  # Django's pure-Python one is replaced


@pytest.mark.django_db
def test_values_round_trip_exactly_with_django_s_time_zone():
    moments = [
        datetime(2026, 12, 4, 21, 35, 38, 727358, tzinfo=UTC),
        datetime(1999, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5))),  # another offset
        datetime(2030, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    ids = [EventFactory(occurred_at=moment).pk for moment in moments]

    loaded = [Event.objects.get(pk=pk).occurred_at for pk in ids]

    assert loaded == moments
    assert all(value.tzinfo is connection.timezone for value in loaded)
    with connection.cursor() as cursor:
        cursor.execute("SELECT '2026-03-29 01:30:00+02'::timestamptz, NULL::timestamptz")
        assert cursor.fetchone() == (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), None)


def test_the_fast_loader_and_django_s_agree_on_the_text_postgresql_sends():
    fast = _loader(UTC)(1184, None)
    assert isinstance(fast, Loader)
    for text in (
        b"2026-12-04 21:35:38.727358+00",
        b"2000-02-29 00:00:00+00",
        b"0001-01-01 00:00:00+00",
    ):
        assert fast.load(text) == datetime.fromisoformat(text.decode().replace("+00", "+00:00"))
