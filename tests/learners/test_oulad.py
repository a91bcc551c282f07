"""import_oulad on a tiny OULAD-shaped dataset written by the test."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from learners.models import Course, Enrollment, Event, Learner

TABLES = {
    "courses.csv": "code_module,code_presentation,module_presentation_length\nAAA,2013J,268\n",
    "assessments.csv": (
        "code_module,code_presentation,id_assessment,assessment_type,date,weight\n"
        "AAA,2013J,2,TMA,54,20\n"
        "AAA,2013J,1,TMA,19,10\n"
        "AAA,2013J,3,Exam,,100\n"
    ),
    "studentInfo.csv": (
        "code_module,code_presentation,id_student,gender,region,highest_education,imd_band,"
        "age_band,num_of_prev_attempts,studied_credits,disability,final_result\n"
        "AAA,2013J,11,M,Wales,HE Qualification,90-100%,55<=,0,240,N,Pass\n"
        "AAA,2013J,22,F,Scotland,A Level,20-30%,35-55,1,60,N,Fail\n"
    ),
    "studentRegistration.csv": (
        "code_module,code_presentation,id_student,date_registration,date_unregistration\n"
        "AAA,2013J,11,-10,\n"
        "AAA,2013J,22,5,\n"
    ),
    "studentAssessment.csv": (
        "id_assessment,id_student,date_submitted,is_banked,score\n"
        "1,11,18,0,78\n"
        "2,11,50,0,91\n"
        "3,11,230,0,80\n"
        "1,22,25,0,40\n"
        "2,22,60,0,\n"
    ),
}


@pytest.fixture
def oulad_dir(tmp_path: Path) -> Path:
    for name, text in TABLES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.django_db
def test_import_maps_the_tables_and_is_idempotent(oulad_dir, capsys):
    call_command("import_oulad", str(oulad_dir))
    assert "1 courses, 2 learners, 2 enrollments, 8 new events" in capsys.readouterr().out
    course = Course.objects.get()
    assert course.external_id == "oulad-AAA-2013J"
    assert list(course.modules.values_list("external_id", "position", "is_final")) == [
        ("a1", 1, False),
        ("a2", 2, False),
        ("a3", 3, True),
    ]
    passed = Learner.objects.get(external_id="oulad-11")
    assert passed.attributes["final_results"] == {"oulad-AAA-2013J": "Pass"}
    assert passed.attributes["region"] == "Wales"
    done = Enrollment.objects.get(learner=passed)
    assert done.enrolled_at == datetime(2013, 9, 21, tzinfo=UTC)
    assert done.completed_at == datetime(2014, 6, 26, tzinfo=UTC)
    assert done.progress == Decimal("100.00")
    failed = Enrollment.objects.get(learner__external_id="oulad-22")
    assert (failed.completed_at, failed.progress) == (None, Decimal("33.33"))
    scores = sorted(
        Event.objects.filter(kind="assessment_submitted").values_list(
            "learner__external_id", "module__external_id", "value"
        )
    )
    assert scores == [
        ("oulad-11", "a1", 78.0),
        ("oulad-11", "a2", 91.0),
        ("oulad-11", "a3", 80.0),
        ("oulad-22", "a1", 40.0),
    ]
    assert Event.objects.get(idempotency_key="oulad-score-1-11").occurred_at == datetime(
        2013, 10, 19, 12, tzinfo=UTC
    )

    call_command("import_oulad", str(oulad_dir))
    assert "0 new events (8 already imported)" in capsys.readouterr().out
    assert (Course.objects.count(), Learner.objects.count(), Event.objects.count()) == (1, 2, 8)


@pytest.mark.django_db
def test_import_names_missing_files(tmp_path):
    with pytest.raises(CommandError, match="lacks courses.csv"):
        call_command("import_oulad", str(tmp_path))
    assert Learner.objects.count() == 0
