"""The Celery application. Tasks are thin; the logic they call lives in plain modules."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "expansion.settings")

app = Celery("expansion")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_for(kind: str) -> str:
    """The queue for a kind of work ("scoring", "campaigns", "dispatch"): its own if one is
    configured (``CELERY_QUEUE_<KIND>``), else the default queue."""
    from django.conf import settings

    return settings.CELERY_QUEUES_BY_KIND.get(kind) or settings.CELERY_TASK_DEFAULT_QUEUE
