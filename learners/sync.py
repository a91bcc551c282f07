"""Bulk upserts of learners, courses (with modules) and enrollments from a platform's sync.

Each function validates item by item, then writes every valid item set-based in one
transaction; it returns the counts and the per-item errors. Idempotent: replaying a batch
leaves the tables as they were after the first run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import F

from expansion.core.api.batch import (
    BatchResult,
    FieldError,
    Spec,
    boolean,
    choice,
    email,
    identifier,
    integer,
    item_schema,
    json_object,
    number,
    optional,
    past_datetime,
    refuse_moves_past_stored,
    resolve_references,
    string,
    time_zone,
    upsert,
    validate_items,
    web_url,
)

from .dirty import learners_mark_dirty, learners_mark_dirty_query, scoring_kick_on_commit
from .models import Account, AccountRole, Course, Enrollment, Learner, Module

# Positions are shifted by this much while a course's modules are rewritten, so that
# reordering never trips the per-course unique position constraint mid-statement.
MODULE_POSITION_LIMIT = 100_000


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        errors = sorted(self.errors, key=lambda error: error["index"])
        return {"created": self.created, "updated": self.updated, "errors": errors}


def external_ids(model: type[models.Model], values: Iterable[str]) -> dict[str, int]:
    """``{external_id: id}`` for the given external ids, in one query."""
    rows = model._default_manager.filter(external_id__in=values).values_list("external_id", "id")
    return dict(rows)


def accounts_ensure(external: set[str]) -> dict[str, int]:
    """``{external_id: id}``, creating the accounts that do not exist yet (idempotent)."""
    Account.objects.bulk_create(
        [Account(external_id=value) for value in sorted(external)], ignore_conflicts=True
    )
    return external_ids(Account, external)


def _unsubscribed_at(value: Any) -> Any:
    # Only the learner can resubscribe (through the preference page); a sync may record an
    # unsubscribe made on the platform, but null never clears one.
    return past_datetime(value)


_unsubscribed_at.schema = past_datetime.schema  # type: ignore[attr-defined]


LEARNER_SPECS = {
    "external_id": Spec(identifier(), required=True),
    "email": Spec(email),
    "name": Spec(string(blank=True)),
    "account": Spec(optional(identifier())),
    "time_zone": Spec(time_zone),
    "locale": Spec(string(max_length=16)),
    "marketing_opt_in": Spec(boolean),
    "unsubscribed_at": Spec(optional(_unsubscribed_at)),
    "attributes": Spec(json_object),
    # Account-level offers reach the roles a campaign names (seed 004).
    "role": Spec(choice(AccountRole.values)),
    # Onboarding counts from here (else the first enrolment), not from this sync.
    "signed_up_at": Spec(optional(past_datetime)),
}


def learners_upsert(*, items: list[Any]) -> SyncResult:
    batch = validate_items(items, LEARNER_SPECS, unique="external_id")
    for _, row in batch.rows:
        if "unsubscribed_at" in row and row["unsubscribed_at"] is None:
            del row["unsubscribed_at"]
    with transaction.atomic():
        resolve_references(
            batch, field_name="account", lookup=accounts_ensure, target="account_id", what="account"
        )
        counts = upsert(Learner, [row for _, row in batch.rows], unique_fields=("external_id",))
        # A learner's creation date places them in a lifecycle stage; attributes feed segments.
        learners_mark_dirty(
            external_ids(Learner, [row["external_id"] for _, row in batch.rows]).values()
        )
        scoring_kick_on_commit()
    return SyncResult(counts.created, counts.updated, batch.errors)


MODULE_SPECS = {
    "external_id": Spec(identifier(), required=True),
    "title": Spec(string(blank=True)),
    "position": Spec(integer(minimum=1, maximum=MODULE_POSITION_LIMIT - 1), required=True),
    "is_final": Spec(boolean),
}


def _modules(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise FieldError("must be an array of modules")
    nested = validate_items(value, MODULE_SPECS, unique="external_id")
    if nested.errors:
        first = nested.errors[0]
        inner = f".{first['field']}" if first["field"] else ""
        raise FieldError(first["reason"], field=f"modules[{first['index']}]{inner}")
    modules = [row for _, row in nested.rows]
    positions = [m["position"] for m in modules]
    if len(set(positions)) != len(positions):
        raise FieldError("two modules share a position", field="modules")
    if sum(1 for m in modules if m.get("is_final")) > 1:
        raise FieldError("at most one module may be final", field="modules")
    return modules


_modules.schema = {  # type: ignore[attr-defined]
    "type": "array",
    "items": item_schema(MODULE_SPECS),
    "description": "The course's whole module list (replaces the stored one); one is_final.",
}


COURSE_SPECS = {
    "external_id": Spec(identifier(), required=True),
    "title": Spec(string(), required=True),
    "creator": Spec(optional(string(max_length=150))),
    "learning_path": Spec(string(blank=True)),
    "url": Spec(web_url),
    "path_position": Spec(optional(integer(minimum=1, maximum=10_000))),
    "modules": Spec(_modules),
}


def _check_path_positions(batch: BatchResult) -> list[str]:
    """Each item's place in its learning path as it will be stored (what it sends, else what
    is stored): a position needs a path, and no two courses share one — in the batch or with a
    stored course. Refused items fail on the field to change; returns the courses whose stored
    position moves."""
    stored = {
        ext: (path, position)
        for ext, path, position in Course.objects.filter(
            external_id__in=[row["external_id"] for _, row in batch.rows]
        ).values_list("external_id", "learning_path", "path_position")
    }
    placed: dict[tuple[str, int], str] = {}
    moving = []
    for index, row in batch.rows:
        ext = row["external_id"]
        old_path, old_position = stored.get(ext, ("", None))
        path = row.get("learning_path", old_path)
        position = row["path_position"] if "path_position" in row else old_position
        if position is None:
            continue
        if not path or "path_position" in row and not row.get("learning_path"):
            # A position is sent with its path (the insert half of the upsert is checked too).
            if "path_position" in row:
                batch.fail(index, "path_position", "needs a learning_path")
            else:
                batch.fail(
                    index,
                    "learning_path",
                    f"is empty but the course keeps path_position {position}; "
                    "send path_position: null too",
                )
            continue
        other = placed.get((path, position))
        if other is not None:
            batch.fail(
                index,
                "path_position",
                f"{position} of learning path {path[:64]!r} is given to {other[:64]!r} too",
            )
            continue
        placed[(path, position)] = ext
        if old_position is not None and (old_path, old_position) != (path, position):
            moving.append(ext)
    # A course refused above keeps its stored place, so only the others' places are free.
    refused = {error["index"] for error in batch.errors}
    taken = Course.objects.filter(
        learning_path__in={path for path, _ in placed},
        path_position__in={position for _, position in placed},
    ).exclude(external_id__in=[row["external_id"] for i, row in batch.rows if i not in refused])
    holders = {
        (path, pos): ext
        for ext, path, pos in taken.values_list("external_id", "learning_path", "path_position")
    }
    place_of = {ext: place for place, ext in placed.items()}
    for index, row in batch.rows:
        place = place_of.get(row["external_id"])
        if place is not None and place in holders:
            path, position = place
            batch.fail(
                index,
                "path_position",
                f"{position} of learning path {path[:64]!r} is taken by course "
                f"{holders[place][:64]!r}",
            )
    batch.drop_failed()
    failed = {error["index"] for error in batch.errors}
    kept = {row["external_id"] for index, row in batch.rows if index not in failed}
    return [ext for ext in moving if ext in kept]


def courses_upsert(*, items: list[Any]) -> SyncResult:
    """Upsert courses. A course that carries ``modules`` gets exactly that module list."""
    batch = validate_items(items, COURSE_SPECS, unique="external_id")
    users = get_user_model()
    resolve_references(
        batch,
        field_name="creator",
        lookup=lambda names: dict(
            users.objects.filter(username__in=names).values_list("username", "id")
        ),
        target="creator_id",
        what="user",
    )
    moving = _check_path_positions(batch)  # last: what it returns must be upserted
    modules_by_course = {
        row["external_id"]: row.pop("modules") for _, row in batch.rows if "modules" in row
    }
    with transaction.atomic():
        # Positions that change leave first, so two courses may swap theirs in one batch.
        Course.objects.filter(external_id__in=moving).update(path_position=None)
        counts = upsert(Course, [row for _, row in batch.rows], unique_fields=("external_id",))
        if modules_by_course:
            _modules_replace(modules_by_course)
            # The module count is the denominator of everyone's completion in the course.
            learners_mark_dirty_query(
                Enrollment.objects.filter(course__external_id__in=list(modules_by_course)).values(
                    "learner_id"
                )
            )
            scoring_kick_on_commit()
    return SyncResult(counts.created, counts.updated, batch.errors)


def _modules_replace(modules_by_course: dict[str, list[dict[str, Any]]]) -> None:
    course_ids = external_ids(Course, modules_by_course)
    keep = {
        (course_ids[ext], m["external_id"]) for ext, mods in modules_by_course.items() for m in mods
    }
    existing = Module.objects.filter(course_id__in=course_ids.values()).values_list(
        "id", "course_id", "external_id"
    )
    stale = [pk for pk, course_id, ext in existing if (course_id, ext) not in keep]
    Module.objects.filter(pk__in=stale).delete()
    Module.objects.filter(course_id__in=course_ids.values()).update(
        position=F("position") + MODULE_POSITION_LIMIT, is_final=False
    )
    rows = [
        {
            "course_id": course_ids[ext],
            "external_id": m["external_id"],
            "title": m.get("title", ""),
            "position": m["position"],
            "is_final": m.get("is_final", False),
        }
        for ext, mods in modules_by_course.items()
        for m in mods
    ]
    Module.objects.bulk_create(
        [Module(**row) for row in rows],
        update_conflicts=True,
        unique_fields=["course", "external_id"],
        update_fields=["title", "position", "is_final"],
    )


ENROLLMENT_SPECS = {
    "learner": Spec(identifier(), required=True),
    "course": Spec(identifier(), required=True),
    "enrolled_at": Spec(past_datetime, required=True),
    "completed_at": Spec(optional(past_datetime)),
    "progress": Spec(number(minimum=0, maximum=100)),
}


def enrollments_upsert(*, items: list[Any]) -> SyncResult:
    batch = validate_items(items, ENROLLMENT_SPECS, unique=("learner", "course"))
    for index, row in batch.rows:
        if row.get("completed_at") and row["completed_at"] < row["enrolled_at"]:
            batch.fail(index, "completed_at", "is before enrolled_at")
    batch.drop_failed()
    _resolve_learners_and_courses(batch)
    refuse_moves_past_stored(
        batch,
        Enrollment,
        keys=("learner_id", "course_id"),
        moved="enrolled_at",
        kept="completed_at",
        what="enrollment",
    )
    with transaction.atomic():
        counts = upsert(
            Enrollment,
            [row for _, row in batch.rows],
            unique_fields=("learner_id", "course_id"),
        )
        learners_mark_dirty(row["learner_id"] for _, row in batch.rows)
        scoring_kick_on_commit()
    return SyncResult(counts.created, counts.updated, batch.errors)


def _resolve_learners_and_courses(batch: BatchResult) -> None:
    resolve_references(
        batch,
        field_name="learner",
        lookup=lambda ext: external_ids(Learner, ext),
        target="learner_id",
        what="learner",
    )
    resolve_references(
        batch,
        field_name="course",
        lookup=lambda ext: external_ids(Course, ext),
        target="course_id",
        what="course",
    )
