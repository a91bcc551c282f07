"""Saves and deletes outside the syncs (the admin, shell scripts) mark learners dirty too.

The syncs and event ingestion mark learners set-based themselves and write with
``bulk_create``, which sends no signals, so nothing is marked twice.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .dirty import learners_mark_dirty, learners_mark_dirty_query, scoring_kick_on_commit
from .models import Enrollment, Learner, Module


@receiver(post_save, sender=Learner)
def _learner_saved(sender: type, instance: Learner, **kwargs: Any) -> None:
    learners_mark_dirty([instance.pk])
    scoring_kick_on_commit()


@receiver([post_save, post_delete], sender=Enrollment)
def _enrollment_changed(sender: type, instance: Enrollment, **kwargs: Any) -> None:
    learners_mark_dirty([instance.learner_id])
    scoring_kick_on_commit()


@receiver([post_save, post_delete], sender=Module)
def _module_changed(sender: type, instance: Module, **kwargs: Any) -> None:
    learners_mark_dirty_query(
        Enrollment.objects.filter(course_id=instance.course_id).values("learner_id")
    )
    scoring_kick_on_commit()
