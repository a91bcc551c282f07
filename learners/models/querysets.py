"""Reusable filters over learners and events, and the consent condition they need.

``reachable_q`` lives here rather than in ``learners.consent`` because the learner manager is
built from ``LearnerQuerySet`` (so ``core`` imports this module) and the condition reads only
the consent models; ``learners.consent`` re-exports it.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower

from .consent import MARKETING_CATEGORIES, CategoryOptOut, EmailSuppression


def reachable_q(category: str = "") -> Q:
    """Learners a message of ``category`` may reach, as one condition for a queryset of
    learners ('' = any marketing category: opted in, not unsubscribed from everything)."""
    condition: Q = ~Q(email="") & ~Q(
        Exists(EmailSuppression.objects.filter(email=Lower(OuterRef("email"))))
    )
    if category and category not in MARKETING_CATEGORIES:
        return condition
    condition &= Q(marketing_opt_in=True, unsubscribed_at__isnull=True)
    if category:
        condition &= ~Q(
            Exists(CategoryOptOut.objects.filter(learner=OuterRef("pk"), category=category))
        )
    return condition


class LearnerQuerySet(models.QuerySet):
    def reachable(self, category: str = "") -> LearnerQuerySet:
        """Learners a message of ``category`` may reach (``reachable_q``): an address that has
        not bounced or complained, and for marketing the learner's opt-in, no unsubscribe from
        everything and no opt-out of the category."""
        return self.filter(reachable_q(category))


class EventQuerySet(models.QuerySet):
    def of_kind(self, kind: str) -> EventQuerySet:
        return self.filter(kind=kind)

    def between(self, start: datetime, end: datetime) -> EventQuerySet:
        return self.filter(occurred_at__gte=start, occurred_at__lt=end)
