"""The admin home page's "Needs attention" box (``campaigns/admin_index.html``)."""

from __future__ import annotations

from typing import Any

from django import template

from campaigns.failures import needs_attention

register = template.Library()


@register.inclusion_tag("campaigns/needs_attention.html", takes_context=True)
def needs_attention_box(context: template.Context) -> dict[str, Any]:
    """Campaigns paused by failures that the user may see, and the mail circuit when open."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None:
        return {"attention": None}
    return {"attention": needs_attention(user=user)}
