"""Import the Open University Learning Analytics Dataset (OULAD) tables.

Mapping (Kuzilek et al., Scientific Data 4, 2017):

- a module presentation (``AAA``/``2013J``) is a Course ``oulad-AAA-2013J``; its assessments,
  in date order, are its Modules (the last one final);
- a student is a Learner ``oulad-<id_student>`` with the demographic columns as attributes and
  ``final_results`` per course (``{"oulad-AAA-2013J": "Pass"}``);
- a registration is an Enrollment (enrolled at registration, completed at the presentation's
  end for Pass and Distinction); progress is the share of the course's assessments submitted;
- a scored submission is an ``assessment_submitted`` event (value = score) plus a
  ``module_completed`` event for that assessment's module.

Presentations start on the 1st of February (``B``) or October (``J``). Writes go through the
same sync services as the API, in batches, so importing twice changes nothing.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .ingest import events_ingest
from .sync import courses_upsert, enrollments_upsert, learners_upsert

BATCH = 1000
ATTRIBUTE_COLUMNS = [
    "gender",
    "region",
    "highest_education",
    "imd_band",
    "age_band",
    "num_of_prev_attempts",
    "studied_credits",
    "disability",
]


@dataclass
class ImportCounts:
    learners: int = 0
    courses: int = 0
    enrollments: int = 0
    events_new: int = 0
    events_duplicate: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def presentation_start(code: str) -> datetime:
    year, month = int(code[:4]), {"B": 2, "J": 10}.get(code[4:], 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _rows(path: Path, name: str) -> Iterator[dict[str, str]]:
    with (path / name).open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def _batched(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def oulad_import(*, path: Path, progress: Callable[[str], None] = lambda _: None) -> ImportCounts:
    """Load the OULAD CSVs in ``path``; idempotent. Returns counts and any refused rows."""
    counts = ImportCounts()
    courses: dict[str, dict[str, Any]] = {}
    for row in _rows(path, "courses.csv"):
        ext = f"oulad-{row['code_module']}-{row['code_presentation']}"
        start = presentation_start(row["code_presentation"])
        courses[ext] = {
            "start": start,
            "end": start + timedelta(days=int(row["module_presentation_length"])),
            "assessments": [],
        }
    assessments: dict[str, tuple[str, int]] = {}
    for row in _rows(path, "assessments.csv"):
        ext = f"oulad-{row['code_module']}-{row['code_presentation']}"
        if ext in courses:
            day = int(row["date"]) if row["date"] not in ("", "?") else 10_000
            courses[ext]["assessments"].append((day, row["id_assessment"], row["assessment_type"]))
    for ext, course in courses.items():
        course["assessments"].sort()
        for position, (_, assessment_id, _) in enumerate(course["assessments"], start=1):
            assessments[assessment_id] = (ext, position)

    course_items = [
        {
            "external_id": ext,
            "title": f"OULAD {ext.removeprefix('oulad-')}",
            "learning_path": "",
            "modules": [
                {
                    "external_id": f"a{assessment_id}",
                    "title": f"{kind} {assessment_id}",
                    "position": position,
                    "is_final": position == len(course["assessments"]),
                }
                for position, (_, assessment_id, kind) in enumerate(course["assessments"], start=1)
            ],
        }
        for ext, course in courses.items()
    ]
    result = courses_upsert(items=course_items)
    counts.courses = result.created + result.updated
    counts.errors += result.errors
    progress(f"courses: {counts.courses}")

    learners: dict[str, dict[str, Any]] = {}
    results: dict[tuple[str, str], str] = {}
    for row in _rows(path, "studentInfo.csv"):
        ext = f"oulad-{row['code_module']}-{row['code_presentation']}"
        learner = learners.setdefault(
            row["id_student"],
            {
                "external_id": f"oulad-{row['id_student']}",
                "attributes": {c: row[c] for c in ATTRIBUTE_COLUMNS} | {"final_results": {}},
            },
        )
        learner["attributes"]["final_results"][ext] = row["final_result"]
        results[(row["id_student"], ext)] = row["final_result"]
    for chunk in _batched(list(learners.values())):
        result = learners_upsert(items=chunk)
        counts.learners += result.created + result.updated
        counts.errors += result.errors
    progress(f"learners: {counts.learners}")

    submitted: dict[tuple[str, str], int] = defaultdict(int)
    events: list[dict[str, Any]] = []
    for row in _rows(path, "studentAssessment.csv"):
        if row["id_assessment"] not in assessments or row["score"] in ("", "?"):
            continue
        ext, position = assessments[row["id_assessment"]]
        at = _iso(courses[ext]["start"] + timedelta(days=int(row["date_submitted"]), hours=12))
        student = f"oulad-{row['id_student']}"
        module = f"a{row['id_assessment']}"
        submitted[(row["id_student"], ext)] += 1
        base = {"learner": student, "occurred_at": at, "course": ext, "module": module}
        events.append(
            base
            | {
                "idempotency_key": f"oulad-score-{row['id_assessment']}-{row['id_student']}",
                "kind": "assessment_submitted",
                "value": float(row["score"]),
            }
        )
        events.append(
            base
            | {
                "idempotency_key": f"oulad-done-{row['id_assessment']}-{row['id_student']}",
                "kind": "module_completed",
            }
        )

    enrollment_items = []
    for row in _rows(path, "studentRegistration.csv"):
        ext = f"oulad-{row['code_module']}-{row['code_presentation']}"
        presentation = courses.get(ext)
        if presentation is None:
            continue
        day = int(row["date_registration"]) if row["date_registration"] not in ("", "?") else 0
        enrolled_at = presentation["start"] + timedelta(days=day)
        total = len(presentation["assessments"]) or 1
        done = min(submitted[(row["id_student"], ext)], total)
        passed = results.get((row["id_student"], ext)) in ("Pass", "Distinction")
        enrollment_items.append(
            {
                "learner": f"oulad-{row['id_student']}",
                "course": ext,
                "enrolled_at": _iso(enrolled_at),
                "completed_at": _iso(max(presentation["end"], enrolled_at)) if passed else None,
                "progress": round(100 * done / total, 2),
            }
        )
    for chunk in _batched(enrollment_items):
        result = enrollments_upsert(items=chunk)
        counts.enrollments += result.created + result.updated
        counts.errors += result.errors
    progress(f"enrollments: {counts.enrollments}")

    for chunk in _batched(events):
        ingested = events_ingest(items=chunk)
        counts.events_new += ingested.accepted
        counts.events_duplicate += len(ingested.duplicates)
        counts.errors += ingested.errors
    progress(f"events: {counts.events_new} new, {counts.events_duplicate} already there")
    return counts
