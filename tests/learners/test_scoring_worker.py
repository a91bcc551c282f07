"""A new event reaches the learner's score within 60 seconds, through a real Celery worker."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from learners.models import LearnerScore
from tests.factories.learners import LearnerFactory
from tests.workers import worker_start


@pytest.mark.django_db(transaction=True)
def test_event_is_scored_by_a_real_worker_within_a_minute(api, settings):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    worker = worker_start(queue)
    try:
        LearnerFactory(external_id="live")
        started = time.monotonic()
        response = api.post(
            "/api/v1/events/bulk/",
            {
                "items": [
                    {
                        "idempotency_key": "live-1",
                        "learner": "live",
                        "kind": "resource_downloaded",
                        "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
                    }
                ]
            },
            format="json",
        )
        assert response.json()["accepted"] == 1
        score = None
        while time.monotonic() - started < 60 and score is None:
            time.sleep(0.5)
            score = LearnerScore.objects.filter(learner__external_id="live").first()
        assert score is not None, "no score within 60 seconds"
        assert score.downloads == 0.2
        assert score.lps == 2.0
        assert time.monotonic() - started < 60
    finally:
        worker.terminate()
        worker.wait(timeout=30)
