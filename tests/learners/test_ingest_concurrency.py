"""The same batch posted twice at once: every event stored once, each reported once."""

import threading

import pytest
from django.db import connection

from learners.ingest import events_ingest
from learners.models import Event
from tests.factories.learners import LearnerFactory


@pytest.mark.django_db(transaction=True)
def test_same_batch_twice_concurrently_stores_each_event_once():
    LearnerFactory(external_id="alice")
    items = [
        {
            "idempotency_key": f"race-{n}",
            "learner": "alice",
            "kind": "login",
            "occurred_at": "2026-03-01T10:00:00Z",
        }
        for n in range(1000)
    ]
    barrier = threading.Barrier(2)
    results = []

    def post() -> None:
        barrier.wait()
        try:
            results.append(events_ingest(items=items))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Event.objects.count() == 1000
    assert len(results) == 2
    assert sum(r.accepted for r in results) == 1000
    assert sum(len(r.duplicates) for r in results) == 1000
    reported = sorted(d["index"] for r in results for d in r.duplicates)
    assert reported == list(range(1000))
    assert all(r.errors == [] for r in results)
