"""A final-module completion becomes a send within 60 seconds, through a real Celery worker."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Send
from tests.factories.campaigns import CampaignFactory
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import CourseFactory, EnrollmentFactory, LearnerFactory, ModuleFactory
from tests.workers import worker_start


@pytest.mark.django_db(transaction=True)
def test_final_module_completion_is_a_send_within_a_minute(api, settings):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    ExperimentSettingsFactory(global_holdout_percent=0)
    course = CourseFactory(external_id="sql-1", title="SQL Basics")
    ModuleFactory(course=course, position=1, external_id="m1", is_final=True)
    learner = LearnerFactory(external_id="fresh")
    EnrollmentFactory(
        learner=learner, course=course, enrolled_at=timezone.now() - timedelta(days=40)
    )
    # A brand-new learner's LPS is low; this campaign waives the LPS floor.
    campaign = CampaignFactory(name="Next course", guardrails={"min_lps": 0})
    worker = worker_start(queue, EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    try:
        started = time.monotonic()
        response = api.post(
            "/api/v1/events/bulk/",
            {
                "items": [
                    {
                        "idempotency_key": "fresh-final",
                        "learner": "fresh",
                        "kind": "module_completed",
                        "course": "sql-1",
                        "module": "m1",
                        "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
                    }
                ]
            },
            format="json",
        )
        assert response.json()["accepted"] == 1
        send = None
        while time.monotonic() - started < 60 and send is None:
            time.sleep(0.5)
            send = Send.objects.filter(learner=learner, campaign=campaign).first()
        elapsed = time.monotonic() - started
        assert send is not None, "no send within 60 seconds"
        assert elapsed < 60
        assert send.rule == ""
        # The same worker may already be dispatching it (locmem backend): any of the three
        # states is the send existing in time; suppressed or failed would not be.
        assert send.status in {"queued", "sending", "sent"}
        assert send.reason.startswith("completed the final module of SQL Basics; LPS ")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
