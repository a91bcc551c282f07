from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ...oulad import oulad_import

REQUIRED = [
    "courses.csv",
    "assessments.csv",
    "studentInfo.csv",
    "studentRegistration.csv",
    "studentAssessment.csv",
]


class Command(BaseCommand):
    help = "Import the OULAD tables (courses, assessments, students, registrations, scores)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="Folder holding the OULAD CSV files.")

    def handle(self, *args, path: Path, **options) -> None:
        missing = [name for name in REQUIRED if not (path / name).is_file()]
        if missing:
            raise CommandError(f"{path} lacks {', '.join(missing)}")
        counts = oulad_import(path=path, progress=self.stdout.write)
        for error in counts.errors[:20]:
            self.stderr.write(f"refused: {error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"OULAD: {counts.courses} courses, {counts.learners} learners, "
                f"{counts.enrollments} enrollments, {counts.events_new} new events "
                f"({counts.events_duplicate} already imported), {len(counts.errors)} refused."
            )
        )
        if counts.errors:
            raise SystemExit(1)
