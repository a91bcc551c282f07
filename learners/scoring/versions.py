"""The scoring model's versions: the active one, and saving a change as the next."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..models import ScoringModel


def scoring_model_active() -> ScoringModel:
    """The active scoring model; creates v1 with the seeds' defaults if there is none."""
    active = ScoringModel.objects.filter(is_active=True).first()
    if active is None:
        active, _ = ScoringModel.objects.get_or_create(
            version=1, defaults={"is_active": True, "note": "Defaults from the seeds."}
        )
    return active


def scoring_model_new_version(
    *, base: ScoringModel, changes: dict[str, Any], user=None
) -> ScoringModel:
    """Save ``changes`` as the next version and make it the active one."""
    fields = {
        f.name: getattr(base, f.name)
        for f in ScoringModel._meta.concrete_fields
        if f.editable and f.name not in {"id", "created_by", "note"}
    }
    fields.update(changes)
    with transaction.atomic():
        last = ScoringModel.objects.select_for_update().order_by("-version").first()
        ScoringModel.objects.filter(is_active=True).update(is_active=False)
        return ScoringModel.objects.create(
            version=(last.version if last else 0) + 1, is_active=True, created_by=user, **fields
        )
