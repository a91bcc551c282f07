"""Checking, versioning and rendering message templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from . import engine
from .checks import FIELDS, ContentCheck, content_check
from .models import MessageTemplate, MessageTemplateVersion

__all__ = ["FIELDS", "ContentCheck", "content_check"]  # re-exported: checks live in checks.py


def compile_content(content: dict[str, str]) -> dict[str, str]:
    """What a version stores per locale: the sources, and the compiled HTML and text."""
    html = content.get("html_body") or ""
    text = content.get("text_body") or ""
    return {
        "subject": content.get("subject") or "",
        "preheader": content.get("preheader") or "",
        "html": html,
        "text": text,
        "html_compiled": engine.inline_css(html),
        "text_compiled": text if text.strip() else engine.text_from_html(html),
    }


def template_contents(template: MessageTemplate) -> dict[str, dict[str, str]]:
    contents = {
        template.locale: {
            "subject": template.subject,
            "preheader": template.preheader,
            "html_body": template.html_body,
            "text_body": template.text_body,
        }
    }
    for variant in template.variants.all():
        contents[variant.locale] = {
            "subject": variant.subject,
            "preheader": variant.preheader,
            "html_body": variant.html_body,
            "text_body": variant.text_body,
        }
    return contents


def template_snapshot(*, template: MessageTemplate, user: Any = None) -> MessageTemplateVersion:
    """The version for the template's current content: the latest one if nothing changed,
    otherwise a new one. Versions are never edited."""
    content = {
        locale: compile_content(parts) for locale, parts in template_contents(template).items()
    }
    with transaction.atomic():
        latest = (
            MessageTemplateVersion.objects.select_for_update()
            .filter(template=template)
            .order_by("-number")
            .first()
        )
        same = (
            latest is not None
            and latest.content == content
            and (latest.channel, latest.category, latest.default_locale)
            == (template.channel, template.category, template.locale)
        )
        if same:
            assert latest is not None
            return latest
        return MessageTemplateVersion.objects.create(
            template=template,
            number=(latest.number if latest else 0) + 1,
            channel=template.channel,
            category=template.category,
            content=content,
            default_locale=template.locale,
            created_by=user if getattr(user, "pk", None) else None,
        )


@dataclass(frozen=True)
class Rendered:
    subject: str
    preheader: str
    html: str
    text: str
    locale: str


def message_render(
    *, version: MessageTemplateVersion, context: dict[str, Any], locale: str = ""
) -> Rendered:
    """Render a version for one context; raises ``engine.RenderError`` (with line and column)."""
    used = version.resolve_locale(locale or context.get("learner", {}).get("locale") or "")
    parts = version.content[used]
    return Rendered(
        # One line: a CR or LF (a name stored before the API refused them) is a BadHeaderError.
        subject=" ".join(engine.render(parts["subject"], context, html=False).split()),
        preheader=engine.render(parts["preheader"], context, html=False).strip(),
        html=engine.render(parts["html_compiled"], context, html=True),
        text=engine.render(parts["text_compiled"], context, html=False),
        locale=used,
    )
