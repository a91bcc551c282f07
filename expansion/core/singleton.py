"""One-row settings tables (commerce settings, experiment settings): the model base that loads
the row, creating it with its defaults, and the admin that edits it in place."""

from __future__ import annotations

from typing import Any, Self

from django.contrib import admin
from django.db import models
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse


class SingletonModel(models.Model):
    """Subclasses keep a ``CheckConstraint(condition=Q(id=1))`` so a second row cannot exist."""

    class Meta:
        abstract = True

    @classmethod
    def load(cls) -> Self:
        row, _ = cls._default_manager.get_or_create(id=1)
        return row


class SingletonAdmin(admin.ModelAdmin):
    """No list, no add, no delete: the list opens the one row (created with the defaults)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        row = self.model.load()  # type: ignore[attr-defined]
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
        )
