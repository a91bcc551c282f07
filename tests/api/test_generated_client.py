"""A client generated from ``/api/schema/`` by openapi-python-client runs the README's
integration as generated — no workaround: every bulk endpoint with the README's bodies
(course modules, order lines), the events replayed, a filtered list walked to its last page
by ``next_cursor``, a learner's scores and recommendations, the metrics — against a live
server on the demo data, each answer parsed into the generated models."""

from __future__ import annotations

import datetime
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expansion.commerce.apikeys import api_key_issue
from expansion.demo.data import demo_seed
from learners.models import Learner
from learners.scoring import score_learners
from tests.helpers import migration_rows_ensure
from tests.test_readme_examples import examples

pytestmark = pytest.mark.django_db(transaction=True)
BIN = Path(sys.executable).parent


@pytest.fixture
def generated(tmp_path, client):
    schema = tmp_path / "schema.json"
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema.write_bytes(response.content)
    result = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(schema), "--meta", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=120,
    )
    # Every operation and model generated, nothing skipped.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("expansion_api_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("expansion_api_client")]:
            del sys.modules[name]


def _api(package: str, module: str):
    return importlib.import_module(f"expansion_api_client.api.{package}.{module}")


def _model(name: str):
    return importlib.import_module("expansion_api_client.models").__dict__[name]


BULK = {
    "learners": ("learners", "V1LearnersBulkCreateBody"),
    "courses": ("learners", "V1CoursesBulkCreateBody"),
    "enrollments": ("learners", "V1EnrollmentsBulkCreateBody"),
    "events": ("learners", "V1EventsBulkCreateBody"),
    "products": ("commerce", "V1ProductsBulkCreateBody"),
    "orders": ("commerce", "V1OrdersBulkCreateBody"),
    "subscriptions": ("commerce", "V1SubscriptionsBulkCreateBody"),
}


def test_the_readme_integration_through_a_generated_client(generated, live_server):
    migration_rows_ensure()  # an earlier transactional test's flush removed them
    demo_seed(learners=40, anchor=datetime.date(2026, 6, 1))
    score_learners(full=True)  # as seed_demo does
    key = api_key_issue(name="generated client", scopes=["read", "write"]).raw_key
    api = generated.AuthenticatedClient(base_url=live_server.url, token=key)

    # Every bulk endpoint, the README's bodies as the generated models.
    answers = {}
    for path, body in examples():
        resource = path.split("/")[3]
        package, model = BULK[resource]
        call = _api(package, f"v1_{resource}_bulk_create")
        response = call.sync_detailed(client=api, body=_model(model).from_dict(body))
        assert response.status_code == 200, (path, response.content)
        answers[resource] = response.parsed
    assert (answers["learners"].created, answers["learners"].updated) == (1, 1)
    assert (answers["courses"].created, answers["orders"].created) == (1, 1)
    assert answers["events"].accepted == 2
    assert answers["subscriptions"].errors == []
    # The events replayed: nothing new, both duplicates.
    events = dict(examples())["/api/v1/events/bulk/"]
    replay = _api("learners", "v1_events_bulk_create").sync(
        client=api, body=_model("V1EventsBulkCreateBody").from_dict(events)
    )
    assert (replay.accepted, [d.index for d in replay.duplicates]) == (0, [0, 1])

    # A filtered list to its last page, by the bare cursor.
    seen, cursor, pages = [], None, 0
    listing = _api("learners", "v1_learners_list")
    while True:
        page = listing.sync(
            client=api, marketing_opt_in=True, page_size=7, **({"cursor": cursor} if cursor else {})
        )
        seen += [learner.external_id for learner in page.results]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = set(
        Learner.objects.filter(marketing_opt_in=True).values_list("external_id", flat=True)
    )
    assert len(seen) == len(expected) == len(set(seen))
    assert set(seen) == expected
    assert pages == -(-len(expected) // 7)

    # Scores, recommendations, metrics: parsed into their models.
    scored = Learner.objects.filter(score__lps__isnull=False).order_by("id").first()
    scores = _api("learners", "v1_learners_scores_retrieve").sync(scored.external_id, client=api)
    assert type(scores).__name__ == "LearnerScoresOut"
    assert scores.lps == pytest.approx(scored.score.lps)
    recommendations = _api("recommendations", "v1_learners_recommendations_retrieve").sync(
        scored.external_id, client=api, limit=3
    )
    assert type(recommendations).__name__ == "RecommendationsOut"
    assert len(recommendations.results) <= 3
    metrics = _api("metrics", "v1_metrics_retrieve").sync(
        client=api,
        period=_model("V1MetricsRetrievePeriod").MONTH,
        start=datetime.date(2026, 3, 1),
        end=datetime.date(2026, 5, 31),
    )
    assert type(metrics).__name__ == "MetricsOut"
    assert [p.period_start for p in metrics.results] == [
        datetime.date(2026, 3, 1),
        datetime.date(2026, 4, 1),
        datetime.date(2026, 5, 1),
    ]
    assert metrics.currency == "USD"
