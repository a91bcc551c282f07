"""Queue routing: which Celery queue each kind of work goes to."""

from django.conf import settings


def queue_for(kind: str) -> str:
    """The queue for a kind of work ("scoring", "campaigns", "dispatch"): its own if one is
    configured (``CELERY_QUEUE_<KIND>``), else the default queue."""
    return settings.CELERY_QUEUES_BY_KIND.get(kind) or settings.CELERY_TASK_DEFAULT_QUEUE
