"""Filters the list endpoints share."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema_field


@extend_schema_field({"type": "string", "pattern": r"^[^\x00]*$"})
class TextFilter(django_filters.CharFilter):
    """A text filter whose schema says the one thing it refuses: a NUL character (a 400, as
    Django's forms refuse it). Any other text filters; a value nothing has matches nothing."""
