"""Deterministic, sticky assignment: a hash of a salt and the learner id → one of 10,000
buckets → holdout or arm. The same function in Python and in SQL (md5), so whole audiences
are assigned in one statement and a single learner's arm can be recomputed anywhere."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from learners.models import Learner, LearnerScore

from .models import BUCKETS, Assignment, Experiment, ExperimentSettings, Phase, Status


def bucket(salt: str, learner_id: int) -> int:
    digest = hashlib.md5(f"{salt}:{learner_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % BUCKETS


def bucket_sql(column: str) -> str:
    """SQL for ``bucket(%s, column)``; takes the salt as its one parameter."""
    return (
        f"mod(('x' || substr(md5(%s || ':' || CAST({column} AS TEXT)), 1, 8))"
        f"::bit(32)::bigint, {BUCKETS})"
    )


def _cut(percent: Decimal | float) -> int:
    return int(Decimal(str(percent)) * BUCKETS / 100)


def global_holdout_bucket_limit() -> tuple[str, int]:
    settings = ExperimentSettings.load()
    return settings.global_holdout_salt, _cut(settings.global_holdout_percent)


def in_global_holdout(learner_id: int) -> bool:
    salt, limit = global_holdout_bucket_limit()
    return bucket(salt, learner_id) < limit


def global_holdout_q(*, outside: bool = True) -> Q:
    """A condition on learners: outside (default) or inside the global holdout."""
    salt, limit = global_holdout_bucket_limit()
    expression = RawSQL(
        f"{bucket_sql('learners_learner.id')} < %s", [salt, limit], output_field=BooleanField()
    )
    inside = Q(expression)
    return ~inside if outside else inside


@dataclass(frozen=True)
class Plan:
    """Bucket ranges: [0, holdout) holdout; then each active arm's [start, end)."""

    holdout: int
    arms: list[tuple[int, int, int]]  # (arm id, start, end)

    def arm_for(self, value: int) -> int | None:
        if value < self.holdout:
            return None
        for arm_id, start, end in self.arms:
            if start <= value < end:
                return arm_id
        return None


def plan_from(*, holdout_percent: Decimal | float, weights: list[tuple[int, int]]) -> Plan:
    """The bucket ranges for a holdout share and (arm id, weight) pairs, in arm id order."""
    holdout = _cut(holdout_percent)
    arms = sorted(weights)
    total = sum(w for _, w in arms)
    ranges = []
    start = holdout
    for index, (arm_id, weight) in enumerate(arms):
        share = (BUCKETS - holdout) * weight // total if total else 0
        end = BUCKETS if index == len(arms) - 1 else start + share
        ranges.append((arm_id, start, end))
        start = end
    return Plan(holdout=holdout, arms=ranges)


def plan_shares(plan: Plan) -> dict[int | None, float]:
    """Each group's planned share of assignments (None: the holdout), from its buckets."""
    shares: dict[int | None, float] = {None: plan.holdout / BUCKETS}
    for arm_id, start, end in plan.arms:
        shares[arm_id] = (end - start) / BUCKETS
    return shares


def _weights_now(experiment: Experiment) -> list[tuple[int, int]]:
    return list(experiment.arms.filter(is_active=True).values_list("id", "weight"))


def plan_for(experiment: Experiment) -> Plan:
    return plan_from(holdout_percent=experiment.holdout_percent, weights=_weights_now(experiment))


def phase_plan(phase: Phase) -> Plan:
    weights = [(int(arm_id), int(w)) for arm_id, w in phase.weights.items()]
    return plan_from(holdout_percent=phase.holdout_percent, weights=weights)


def phase_record(*, experiment: Experiment, now: datetime | None = None) -> Phase | None:
    """The phase in force for ``experiment``'s current plan, started now if the plan changed.

    Call after anything that changes the plan (arms reweighted, retired or added, the holdout
    changed); ``assign`` calls it too, so no learner is ever assigned under an unrecorded
    plan. Idempotent: an unchanged plan returns the open phase. A draft has no phase (None).
    Phases never go back in time: a new phase starts no earlier than the one it closes.
    """
    if experiment.status == Status.DRAFT:
        return None
    now = now or timezone.now()
    holdout = Decimal(str(experiment.holdout_percent))
    weights = {str(arm_id): weight for arm_id, weight in _weights_now(experiment)}
    current = experiment.phases.filter(ended_at__isnull=True).first()
    if current is not None and current.holdout_percent == holdout and current.weights == weights:
        return current
    with transaction.atomic():
        # One writer per experiment: concurrent evaluations would otherwise both open a phase.
        Experiment.objects.select_for_update().filter(pk=experiment.pk).first()
        current = experiment.phases.filter(ended_at__isnull=True).first()
        if current is not None:
            if current.holdout_percent == holdout and current.weights == weights:
                return current
            now = max(now, current.started_at)
            Phase.objects.filter(pk=current.pk).update(ended_at=now)
        return Phase.objects.create(
            experiment=experiment,
            number=(current.number + 1) if current is not None else 1,
            started_at=now,
            holdout_percent=holdout,
            weights=weights,
        )


class NotRunning(Exception):
    pass


def assign(
    *, experiment: Experiment, learners: QuerySet[Learner], now: datetime | None = None
) -> int:
    """Assign every learner of ``learners`` not yet in ``experiment``; returns how many.

    One ``INSERT … SELECT`` whatever the number: the bucket is computed in SQL, the arm from
    the plan's bucket ranges, the LPS band copied from the learner's score. Sticky: a learner
    already assigned keeps their arm (``ON CONFLICT DO NOTHING``), even if arms change later.
    The plan used is recorded first as the experiment's current phase (``phase_record``).
    """
    if experiment.status != Status.RUNNING:
        raise NotRunning(f"{experiment} is {experiment.status}, not running")
    now = now or timezone.now()
    plan = plan_for(experiment)
    if not plan.arms:
        raise NotRunning(f"{experiment} has no active arm")
    phase_record(experiment=experiment, now=now)
    # The plan's bucket ranges as parameters: WHEN bucket < end THEN arm, in order.
    cases = " ".join("WHEN x.bucket < %s THEN %s" for _ in plan.arms)
    case_params = [value for arm_id, _, end in plan.arms for value in (end, arm_id)]
    ids_sql, ids_params = learners.order_by().values("id").query.sql_with_params()
    assignment = Assignment._meta.db_table
    learner = Learner._meta.db_table
    score = LearnerScore._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {assignment}
              (experiment_id, learner_id, arm_id, bucket, band, assigned_at, window_ends_at)
            SELECT %s, x.id, CASE WHEN x.bucket < %s THEN NULL {cases} END, x.bucket,
              COALESCE(s.band, ''), %s, %s
            FROM (
              SELECT l.id, {bucket_sql("l.id")} AS bucket
              FROM {learner} l WHERE l.id IN ({ids_sql})
            ) x
            LEFT JOIN {score} s ON s.learner_id = x.id
            ON CONFLICT (experiment_id, learner_id) DO NOTHING
            """,
            [
                experiment.pk,
                plan.holdout,
                *case_params,
                now,
                now + timedelta(days=experiment.window_days),
                experiment.salt,
                *ids_params,
            ],
        )
        return cursor.rowcount
