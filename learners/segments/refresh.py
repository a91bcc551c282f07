"""Segment membership, materialised: who entered and who left, and each day's size.

Refreshing a segment is two statements over its members (close the memberships of those who
left; open one for each newcomer); an incremental scoring pass refreshes every segment
together over just its scope (``scoring_scope``), in a fixed number of statements.
Idempotent; entries and exits are stamped with ``as_of``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Case, F, IntegerField, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..models import Learner, Segment, SegmentMembership, SegmentSnapshot
from .rules import compile_definition, segment_members

MEMBERSHIP = SegmentMembership._meta.db_table


def segments_refresh(*, as_of: datetime | None = None, scoped: bool = False) -> dict[int, int]:
    """Bring every active segment's membership up to date; returns {segment id: size}.

    With ``scoped`` only the learners of the current scoring pass (``scoring_scope``) are
    re-evaluated. Entries and exits are stamped with ``as_of``. Idempotent.
    """
    as_of = as_of or timezone.now()
    sizes = {}
    segments = list(Segment.objects.filter(is_active=True).order_by("pk"))
    if scoped:
        # Segments refreshed before: all of them together over the scope (below); a segment
        # never refreshed needs its first full count.
        known = [segment for segment in segments if segment.refreshed_at is not None]
        if known:
            sizes.update(_segments_refresh_scoped(known, as_of))
        segments = [segment for segment in segments if segment.refreshed_at is None]
    for segment in segments:
        sizes[segment.pk] = segment_refresh(segment=segment, as_of=as_of, scoped=scoped)
    return sizes


def _segments_refresh_scoped(segments: list[Segment], as_of: datetime) -> dict[int, int]:
    """Every segment over the scoring scope in a fixed number of statements.

    One statement evaluates every segment's rule for each learner of the scope (the learner
    rows and their scores are read once, not once per segment), then one ``UPDATE`` records
    all exits and one ``INSERT`` all entries; sizes move by exactly those (``F()``, so
    concurrent passes add up). Same memberships as refreshing each segment on its own
    (tests/learners/test_segments.py).
    """
    flags = {
        f"m{segment.pk}": Case(
            When(compile_definition(segment.definition, as_of=as_of), then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        )
        for segment in segments
    }
    rows = (
        Learner.objects.filter(id__in=RawSQL("SELECT learner_id FROM scoring_scope", []))
        .annotate(**flags)
        .values("id", *flags)
    )
    flags_sql, flags_params = rows.query.sql_with_params()
    now_rows = " UNION ALL ".join(
        f"SELECT f.id AS learner_id, {segment.pk} AS segment_id FROM segment_flags f "
        f"WHERE f.m{segment.pk} = 1"
        for segment in segments
    )
    ids = ", ".join(str(segment.pk) for segment in segments)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS segment_flags")
        cursor.execute("DROP TABLE IF EXISTS segment_now")
        _scoped_planner(cursor)
        cursor.execute(f"CREATE TEMPORARY TABLE segment_flags AS {flags_sql}", flags_params)
        cursor.execute(f"CREATE TEMPORARY TABLE segment_now AS {now_rows}")
        cursor.execute("ALTER TABLE segment_now ADD PRIMARY KEY (learner_id, segment_id)")
        cursor.execute("ANALYZE segment_now")
        cursor.execute(
            f"""
            UPDATE {MEMBERSHIP} SET exited_at = %s
            WHERE id IN (
              SELECT m.id FROM scoring_scope s
              JOIN {MEMBERSHIP} m
                ON m.learner_id = s.learner_id AND m.exited_at IS NULL
              WHERE m.segment_id IN ({ids})
                AND NOT EXISTS (
                  SELECT 1 FROM segment_now n
                  WHERE n.learner_id = m.learner_id AND n.segment_id = m.segment_id
                )
            )
            RETURNING segment_id
            """,
            [as_of],
        )
        exited = Counter(row[0] for row in cursor.fetchall())
        cursor.execute(
            f"""
            INSERT INTO {MEMBERSHIP} (segment_id, learner_id, entered_at)
            SELECT n.segment_id, n.learner_id, %s FROM segment_now n
            WHERE NOT EXISTS (
              SELECT 1 FROM {MEMBERSHIP} m
              WHERE m.segment_id = n.segment_id AND m.learner_id = n.learner_id
                AND m.exited_at IS NULL
            )
            RETURNING segment_id
            """,
            [as_of],
        )
        entered = Counter(row[0] for row in cursor.fetchall())
        cursor.execute("DROP TABLE segment_flags")
        cursor.execute("DROP TABLE segment_now")
    # Concurrent scoped passes (score_dirty_learners) meet only here, on the segment rows:
    # each locks them all, in one order, before changing any, so they queue, never deadlock.
    list(
        Segment.objects.filter(pk__in=[s.pk for s in segments])
        .order_by("pk")
        .select_for_update()
        .values_list("pk", flat=True)
    )
    for segment in segments:
        delta = entered[segment.pk] - exited[segment.pk]
        if delta:
            Segment.objects.filter(pk=segment.pk).update(size=F("size") + delta)
    Segment.objects.filter(pk__in=[s.pk for s in segments]).update(refreshed_at=as_of)
    sizes = dict(Segment.objects.filter(pk__in=[s.pk for s in segments]).values_list("pk", "size"))
    SegmentSnapshot.objects.bulk_create(
        [SegmentSnapshot(segment_id=pk, day=as_of.date(), size=size) for pk, size in sizes.items()],
        update_conflicts=True,
        unique_fields=["segment", "day"],
        update_fields=["size"],
    )
    return sizes


def _scoped_planner(cursor: Any) -> None:
    """Plan the scoped refresh as what it is: index probes for a few thousand learners.

    Left to itself PostgreSQL hashed whole-table subqueries for score conditions (all 75,000
    learners of a band, 93 ms, to test 10,000) and scanned every membership row to find the
    scope's (70 ms); probing per learner is ~3 µs (bench/scoring.py, incremental pass).
    ``SET LOCAL``: for the rest of this pass's transaction, which ends with these statements.
    A hashed subquery is only chosen if its table fits in ``work_mem``.
    """
    cursor.execute("SET LOCAL work_mem = '1MB'")
    cursor.execute("SET LOCAL enable_seqscan = off")


def segment_refresh(*, segment: Segment, as_of: datetime, scoped: bool = False) -> int:
    members = segment_members(segment.definition, as_of=as_of, bulk=not scoped)
    if scoped:
        members = members.filter(id__in=RawSQL("SELECT learner_id FROM scoring_scope", []))
    # The rule is evaluated once, into a temporary table that both the exits and the entries
    # read (evaluating it in each took twice as long: bench/scoring.py). NOT EXISTS plans as
    # an anti-join; NOT IN (subquery) degraded to a per-row scan once the member list
    # outgrew work_mem (17 s instead of 0.3 s for 100,000 members).
    target_sql, target_params = members.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS segment_now")
        cursor.execute(
            f"CREATE TEMPORARY TABLE segment_now AS SELECT t.id FROM ({target_sql}) t",
            target_params,
        )
        cursor.execute("ALTER TABLE segment_now ADD PRIMARY KEY (id)")
        cursor.execute("ANALYZE segment_now")
        if scoped:
            # From the scope's learners to their open membership (one probe each of the
            # (segment, learner) index) rather than through all of a large segment's members.
            cursor.execute(
                f"""
                UPDATE {MEMBERSHIP} SET exited_at = %s
                WHERE id IN (
                  SELECT m.id FROM scoring_scope s
                  JOIN {MEMBERSHIP} m
                    ON m.segment_id = %s AND m.learner_id = s.learner_id AND m.exited_at IS NULL
                  WHERE NOT EXISTS (SELECT 1 FROM segment_now n WHERE n.id = s.learner_id)
                )
                """,
                [as_of, segment.pk],
            )
        else:
            cursor.execute(
                f"""
                UPDATE {MEMBERSHIP} SET exited_at = %s
                WHERE id IN (
                  SELECT m.id FROM {MEMBERSHIP} m
                  WHERE m.segment_id = %s AND m.exited_at IS NULL
                    AND NOT EXISTS (SELECT 1 FROM segment_now n WHERE n.id = m.learner_id)
                )
                """,
                [as_of, segment.pk],
            )
        exited = cursor.rowcount
        cursor.execute(
            f"""
            INSERT INTO {MEMBERSHIP} (segment_id, learner_id, entered_at)
            SELECT %s, n.id, %s FROM segment_now n
            WHERE NOT EXISTS (
              SELECT 1 FROM {MEMBERSHIP} m
              WHERE m.segment_id = %s AND m.learner_id = n.id AND m.exited_at IS NULL
            )
            """,
            [segment.pk, as_of, segment.pk],
        )
        entered = cursor.rowcount
        cursor.execute("DROP TABLE segment_now")
    if scoped and segment.refreshed_at is not None:
        # The scope changes the size by exactly its entries and exits (F(): concurrent passes
        # add up); counting the whole segment (~100 ms per 200,000 members) is left to the
        # full pass.
        Segment.objects.filter(pk=segment.pk).update(
            size=F("size") + entered - exited, refreshed_at=as_of
        )
        size = Segment.objects.filter(pk=segment.pk).values_list("size", flat=True).get()
    else:
        size = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).count()
        Segment.objects.filter(pk=segment.pk).update(size=size, refreshed_at=as_of)
    SegmentSnapshot.objects.update_or_create(
        segment=segment, day=as_of.date(), defaults={"size": size}
    )
    return size
