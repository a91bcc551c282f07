"""The Celery application. Tasks are thin; the logic they call lives in plain modules."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "expansion.settings")

app = Celery("expansion")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
