"""Celery tasks of the commerce side: thin wrappers around the services."""

from celery import shared_task

from .affinity import affinity_refresh


# The name of before issue 19: beat schedules and queue routes name it.
@shared_task(name="expansion.tasks.refresh_affinity", acks_late=True)
def refresh_affinity() -> int:
    """Rebuild the product-pair affinity table; returns the pairs stored."""
    return affinity_refresh().pairs
