"""Score history: a learner's LPS, band and stage on each day they changed.

Written by the learner statement itself (``learner_upsert.py``): the rows that statement
writes are exactly the learners whose values changed, and they, and only they, get the day's
history row, in the same statement. One row per learner a day: a later pass the same day
overwrites it (``learners_scorehistory`` has ``fillfactor = 70`` so that this is an in-place
update, migration 0013).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from ..models import ScoreHistory


def with_history(upsert_sql: str) -> str:
    """``upsert_sql`` (whose written rows are ``changed``) followed by the day's history rows
    for them; the statement returns how many learners changed. Takes ``history_day`` as its
    last parameter."""
    return f"""
        {upsert_sql},
        history AS (
          INSERT INTO {ScoreHistory._meta.db_table} (learner_id, day, lps, band, stage)
          SELECT learner_id, %s, lps, band, stage FROM changed
          ON CONFLICT (learner_id, day) DO UPDATE SET
            lps = excluded.lps, band = excluded.band, stage = excluded.stage
        )
        SELECT COUNT(*) FROM changed
    """


def history_day(as_of: datetime) -> date:
    """The history day of a pass as of ``as_of``: its date in UTC."""
    return as_of.astimezone(UTC).date()
