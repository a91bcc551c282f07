"""Template filters every admin page may use without ``{% load %}`` (a builtin library,
``TEMPLATES["OPTIONS"]["builtins"]``): money in the deployment's currency, fractions as
percentages, counts with thousands separators — the same words as the charts' labels."""

from __future__ import annotations

from typing import Any

from django import template

from .charts import value_text

register = template.Library()


@register.filter
def money(value: Any) -> str:
    """12345.5 → "€12,346"; 12.5 → "€12.50"; None → "—"."""
    return value_text(value, "money") if value not in (None, "") else "—"


@register.filter
def percent(value: Any) -> str:
    """0.8939 → "89.4%"; None → "—"."""
    return value_text(value, "percent") if value not in (None, "") else "—"


@register.filter
def count(value: Any) -> str:
    """12345 → "12,345"; None → "—"."""
    return value_text(value, "number") if value not in (None, "") else "—"


@register.filter
def share(value: Any, total: Any) -> str:
    """``value`` as a percentage of ``total`` ("48.1%"); "—" when the total is 0."""
    try:
        return value_text(float(value) / float(total), "percent") if float(total) else "—"
    except (TypeError, ValueError):
        return "—"
