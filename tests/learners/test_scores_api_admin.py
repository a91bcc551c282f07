"""The scores API and the admin pages for scores, scoring models and segments."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from learners.models import ScoringModel, Segment
from learners.scoring import score_learners, scoring_model_active
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    SegmentFactory,
    SegmentSnapshotFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
AS_OF = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def scored():
    learner = LearnerFactory(external_id="ann")
    course = CourseFactory(external_id="sql-1", title="SQL Basics")
    EnrollmentFactory(learner=learner, course=course, enrolled_at=AS_OF - timedelta(days=40))
    EventFactory(
        learner=learner,
        kind="assessment_submitted",
        value=90,
        course=course,
        occurred_at=AS_OF - timedelta(days=2),
    )
    EventFactory(learner=learner, kind="login", occurred_at=AS_OF - timedelta(days=1))
    SegmentFactory(name="Assessed", definition={"field": "assessment", "op": "gte", "value": 50})
    score_learners(as_of=AS_OF, full=True)
    return learner


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_scores_api_explains_the_score(read_api, scored):
    body = read_api.get("/api/v1/learners/ann/scores/").json()
    # 25 × 0.9 + 10 × (½·1 + ½·1/12) = 22.5 + 5.4167
    assert body["lps"] == 27.9167
    assert body["band"] == "low"
    assert body["components"] == {
        "completion": 0.0,
        "assessment": 0.9,
        "community": 0.0,
        "downloads": 0.0,
        "login": pytest.approx(0.5416667),
    }
    assert body["explanation"][1] == "assessment: 90% × 25 = 22.5 points"
    assert body["stage"] == "growth"
    assert body["flags"] == []
    assert body["rfm"] is None
    assert body["segments"] == [{"segment": "Assessed", "entered_at": "2026-03-01T12:00:00Z"}]
    assert [e["course"] for e in body["enrollments"]] == ["sql-1"]
    assert body["model_version"] == 1


def test_scores_api_for_unscored_and_unknown_learners(read_api):
    LearnerFactory(external_id="new")
    body = read_api.get("/api/v1/learners/new/scores/").json()
    assert (body["scored"], body["lps"], body["segments"]) == (False, None, [])
    assert read_api.get("/api/v1/learners/ghost/scores/").status_code == 404


def test_learner_page_and_dashboard(admin_client, scored):
    page = admin_client.get(f"/admin/learners/learner/{scored.pk}/change/").content.decode()
    assert "LPS 27.9" in page
    assert "assessment" in page
    assert "Assessed" in page
    SegmentSnapshotFactory(segment=Segment.objects.get(), day=AS_OF.date() - timedelta(days=1))
    dashboard = admin_client.get("/admin/learners/learnerscore/dashboard/")
    assert dashboard.status_code == 200
    html = dashboard.content.decode()
    assert "SQL Basics" in html
    assert "<svg" in html
    assert "Assessed" in html


def test_segment_admin_refuses_bad_rules_and_previews(admin_client, scored):
    bad = admin_client.post(
        "/admin/learners/segment/add/",
        {
            "name": "Bad",
            "definition": json.dumps({"all": [{"field": "lps", "op": "~"}]}),
            "is_active": "on",
        },
    )
    assert bad.status_code == 200
    assert "all[0]: unknown op" in bad.content.decode()
    assert not Segment.objects.filter(name="Bad").exists()
    preview = admin_client.post(
        "/admin/learners/segment/preview/",
        json.dumps({"field": "band", "op": "in", "value": ["low"]}),
        content_type="application/json",
    ).json()
    assert preview["ok"] is True
    assert preview["count"] == 1
    assert preview["sample"][0]["external_id"] == "ann"
    page = admin_client.get(f"/admin/learners/segment/{Segment.objects.get().pk}/change/")
    assert b"Count and sample members" in page.content


def test_editing_the_scoring_model_saves_a_new_version(admin_client):
    v1 = scoring_model_active()
    form = {
        field.name: getattr(v1, field.name)
        for field in ScoringModel._meta.concrete_fields
        if field.editable and field.name not in {"id", "created_by"}
    }
    refused = admin_client.post(
        f"/admin/learners/scoringmodel/{v1.pk}/change/", {**form, "weight_login": 20}
    )
    assert "must add up to 100; they add up to 110" in refused.content.decode()
    accepted = admin_client.post(
        f"/admin/learners/scoringmodel/{v1.pk}/change/",
        {**form, "weight_login": 0, "weight_completion": 50, "note": "more completion"},
    )
    assert accepted.status_code == 302
    assert list(ScoringModel.objects.values_list("version", "is_active", "weight_completion")) == [
        (2, True, 50),
        (1, False, 40),
    ]
