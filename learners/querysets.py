from __future__ import annotations

from datetime import datetime

from django.db import models


class LearnerQuerySet(models.QuerySet):
    def reachable(self) -> LearnerQuerySet:
        """Learners who may receive marketing: opted in, not unsubscribed, with an address."""
        return self.filter(marketing_opt_in=True, unsubscribed_at__isnull=True).exclude(email="")


class EventQuerySet(models.QuerySet):
    def of_kind(self, kind: str) -> EventQuerySet:
        return self.filter(kind=kind)

    def between(self, start: datetime, end: datetime) -> EventQuerySet:
        return self.filter(occurred_at__gte=start, occurred_at__lt=end)
