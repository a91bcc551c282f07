"""Order and subscription edits outside the syncs (the admin) mark their learners dirty.

The syncs mark learners set-based and write with ``bulk_create``, which sends no signals.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from learners.dirty import learners_mark_dirty, learners_mark_dirty_query, scoring_kick_on_commit
from learners.models import Learner

from .models import Order, OrderLine, Subscription


@receiver([post_save, post_delete], sender=Order)
def _order_changed(sender: type, instance: Order, **kwargs: Any) -> None:
    learners_mark_dirty([instance.learner_id])
    scoring_kick_on_commit()


@receiver([post_save, post_delete], sender=OrderLine)
def _order_line_changed(sender: type, instance: OrderLine, **kwargs: Any) -> None:
    learners_mark_dirty_query(Order.objects.filter(pk=instance.order_id).values("learner_id"))
    scoring_kick_on_commit()


@receiver([post_save, post_delete], sender=Subscription)
def _subscription_changed(sender: type, instance: Subscription, **kwargs: Any) -> None:
    if instance.learner_id:
        learners_mark_dirty([instance.learner_id])
    if instance.account_id:
        learners_mark_dirty_query(
            Learner.objects.filter(account_id=instance.account_id).values("id")
        )
    scoring_kick_on_commit()
