"""The product's settings plus django-post_office, for bench/delivery.py only (the product's
apps and ``makemigrations --check`` stay as they are). Tuned as its documentation allows:
a batch of 1,000 emails per process, 5 threads per process (each with its own SMTP
connection, reused for its share of the batch), no log rows for successful sends."""

import os

from expansion.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]  # noqa: F405

POST_OFFICE = {
    "BATCH_SIZE": 1000,
    "THREADS_PER_PROCESS": int(os.environ.get("BENCH_PO_THREADS", "5")),
    "LOG_LEVEL": 1,  # failures only
    "MESSAGE_ID_ENABLED": False,
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "CELERY_ENABLED": False,
}
