from __future__ import annotations

from datetime import datetime

from django.db import models


class LearnerQuerySet(models.QuerySet):
    def reachable(self, category: str = "") -> LearnerQuerySet:
        """Learners a message of ``category`` may reach (learners.consent.reachable_q): an
        address that has not bounced or complained, and for marketing the learner's opt-in,
        no unsubscribe from everything and no opt-out of the category."""
        from .consent import reachable_q

        return self.filter(reachable_q(category))


class EventQuerySet(models.QuerySet):
    def of_kind(self, kind: str) -> EventQuerySet:
        return self.filter(kind=kind)

    def between(self, start: datetime, end: datetime) -> EventQuerySet:
        return self.filter(occurred_at__gte=start, occurred_at__lt=end)
