"""The API keys clients sync with (kept in this app, label ``expansion``, for its
permission ``expansion.read_api_by_session``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


class ApiKey(models.Model):
    """A client's key. Only a SHA-256 digest is stored; the key is shown once, at creation.

    Keys are 256-bit random tokens, so a fast digest is enough: there is nothing to brute-force
    that a slow password hash would protect, and lookups stay cheap on the ingestion hot path.
    """

    name = models.CharField(max_length=100, help_text="Who uses this key, e.g. 'LMS sync'.")
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="Any of: read, write.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        permissions = [
            # expansion.commerce.apikeys.HasApiScope: a session reads the API only with this (never
            # writes); superusers hold it implicitly, no role grants it (campaigns/roles.py).
            ("read_api_by_session", "Can read the API from an admin session (browsable API)"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return self.is_active and scope in self.scopes
