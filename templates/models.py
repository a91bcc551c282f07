"""Message templates: what is said, in Liquid, with every saved version kept.

A template's content (subject, preheader, HTML and text bodies) is edited on the template for
its default locale and on its locale variants; every save that changes any of it snapshots
the whole template as the next ``MessageTemplateVersion``, which is what a send records and
renders. The snapshot also holds the compiled forms (CSS inlined into the HTML, the text body
generated from the HTML when left empty), so sending never repeats that work per message.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models import Q

from learners.models import MARKETING_CATEGORIES, MessageCategory

from .channels import Channel
from .checks import content_check

__all__ = ["MARKETING_CATEGORIES", "Category", "Channel"]

CONTENT_FIELDS = ("subject", "preheader", "html_body", "text_body")


def _content_clean(
    obj: models.Model, *, channel: str, marketing: bool, locale: str = ""
) -> list[str]:
    """Refuse ``obj``'s content (a template or a variant) on the field each problem is in,
    with its line and column (``templates.checks.content_check``: syntax, unknown filters,
    include/render, and what a trial render runs into); returns the warnings."""
    content = {name: getattr(obj, name) or "" for name in CONTENT_FIELDS}
    check = content_check(content=content, channel=channel, marketing=marketing, locale=locale)
    errors: dict[str, list[str]] = {}
    for problem in check.errors:
        name = problem.field.rsplit(" ", 1)[-1]  # "[de] html_body" in a variant
        name = name if name in CONTENT_FIELDS else NON_FIELD_ERRORS
        errors.setdefault(name, []).append(str(problem))
    if errors:
        raise ValidationError(errors)
    return [str(warning) for warning in check.warnings]


# The categories belong to consent, which the learners app owns.
Category = MessageCategory


class MessageTemplate(models.Model):
    name = models.CharField(max_length=150, unique=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.OFFERS)
    description = models.CharField(max_length=255, blank=True)
    locale = models.CharField(
        max_length=10, default="en", help_text="The locale of the content below (e.g. en, de)."
    )
    subject = models.CharField(
        max_length=500, blank=True, help_text="Email subject or card title (Liquid)."
    )
    preheader = models.CharField(
        max_length=500, blank=True, help_text="The inbox preview line after the subject (Liquid)."
    )
    html_body = models.TextField(help_text="HTML (Liquid). Values are escaped automatically.")
    text_body = models.TextField(
        blank=True, help_text="Plain text (Liquid). Left empty, it is generated from the HTML."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_marketing(self) -> bool:
        return self.category != Category.TRANSACTIONAL

    def clean(self) -> None:
        """Template errors are refused here, on their field; unknown variables are kept in
        ``content_warnings`` (the admin shows them after saving)."""
        super().clean()
        self.content_warnings = _content_clean(
            self, channel=self.channel, marketing=self.is_marketing
        )


class MessageTemplateVariant(models.Model):
    """The same message in another locale."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="variants")
    locale = models.CharField(max_length=10)
    subject = models.CharField(max_length=500, blank=True)
    preheader = models.CharField(max_length=500, blank=True)
    html_body = models.TextField()
    text_body = models.TextField(blank=True)

    class Meta:
        ordering = ["template", "locale"]
        constraints = [
            models.UniqueConstraint(fields=["template", "locale"], name="variant_unique_locale"),
        ]

    def __str__(self) -> str:
        return f"{self.template} [{self.locale}]"

    def clean(self) -> None:
        """As ``MessageTemplate.clean``, with the template's channel and category."""
        super().clean()
        template = self.template if self.template_id or _has_template(self) else None
        self.content_warnings = _content_clean(
            self,
            channel=template.channel if template else Channel.EMAIL,
            marketing=template.is_marketing if template else True,
            locale=self.locale,
        )


def _has_template(variant: MessageTemplateVariant) -> bool:
    return MessageTemplateVariant.template.is_cached(variant)  # type: ignore[attr-defined]


class MessageTemplateVersion(models.Model):
    """An immutable snapshot of a template: what a send used, and what it renders."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    channel = models.CharField(max_length=10, choices=Channel.choices)
    category = models.CharField(max_length=20, choices=Category.choices)
    # {locale: {"subject", "preheader", "html", "text", "html_compiled", "text_compiled"}}
    content = models.JSONField()
    default_locale = models.CharField(max_length=10)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="version_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"

    def resolve_locale(self, locale: str) -> str:
        """The locale whose content serves ``locale``: exact, its language, else the default."""
        if locale in self.content:
            return locale
        language = locale.split("-")[0].split("_")[0]
        return language if language in self.content else self.default_locale

    def for_locale(self, locale: str) -> dict[str, str]:
        return self.content[self.resolve_locale(locale)]
