from __future__ import annotations

import difflib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from learners.models import Learner

from . import engine
from .context import VARIABLES, preview_context
from .messages import message_render, template_snapshot
from .models import (
    MessageTemplate,
    MessageTemplateVariant,
    MessageTemplateVersion,
)
from .test_send import test_send


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = "__all__"
        widgets = {
            "html_body": forms.Textarea(
                attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"}
            ),
            "text_body": forms.Textarea(attrs={"rows": 8, "cols": 100}),
        }


class VariantInline(admin.StackedInline):
    model = MessageTemplateVariant
    extra = 0
    verbose_name = "locale variant"


class VersionInline(admin.TabularInline):
    model = MessageTemplateVersion
    extra = 0
    can_delete = False
    fields = ["number", "default_locale", "created_by", "created_at", "compare"]
    readonly_fields = ["number", "default_locale", "created_by", "created_at", "compare"]
    ordering = ["-number"]
    verbose_name_plural = "versions (a send records the one it used)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Compare")
    def compare(self, obj: MessageTemplateVersion) -> str:
        if obj.number == 1:
            return "—"
        url = reverse("admin:message_templates_compare", args=[obj.template_id])
        return format_html(
            '<a href="{}?a={}&b={}">with v{}</a>', url, obj.number - 1, obj.number, obj.number - 1
        )


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = [
        "name",
        "channel",
        "category",
        "locale",
        "latest_version",
        "is_active",
        "preview_link",
    ]
    list_filter = ["channel", "category", "is_active"]
    search_fields = ["name", "subject"]
    inlines = [VariantInline, VersionInline]
    readonly_fields = ["variable_reference"]
    fieldsets = [
        (None, {"fields": ["name", "channel", "category", "description", "is_active"]}),
        ("Content", {"fields": ["locale", "subject", "preheader", "html_body", "text_body"]}),
        ("Variables you can use", {"fields": ["variable_reference"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("versions")

    @admin.display(description="Version")
    def latest_version(self, obj: MessageTemplate) -> str:
        numbers = [v.number for v in obj.versions.all()]
        return f"v{max(numbers)}" if numbers else "—"

    @admin.display(description="Preview")
    def preview_link(self, obj: MessageTemplate) -> str:
        return format_html(
            '<a href="{}">Preview</a>', reverse("admin:message_templates_preview", args=[obj.pk])
        )

    @admin.display(description="Reference")
    def variable_reference(self, obj: Any = None) -> str:
        rows = []
        for root, members in VARIABLES.items():
            for member, meaning in members.items():
                rows.append((f"{{{{ {root}{'.' + member if member else ''} }}}}", meaning))
        filters = [
            ("| money", '1234.5 → $1,234.50 (the deployment\'s currency, or | money: "EUR")'),
            ("| percent", "0.8 → 80% (| percent: 1 → 80.0%)"),
            ("| local_date", 'a time in the learner\'s own zone (| local_date: "%d %B")'),
            ('| pluralize: "module", "modules"', "the right word for a count"),
            ('| default: "there"', "what to show when a value is missing (else: an error)"),
        ]
        table = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>", rows + filters)
        return format_html(
            "<table>{}</table><p>Loops stop after {} iterations; output stops at {} characters; "
            "values are HTML-escaped. A variable that is not there is an error at preview and "
            "at send: use <code>| default</code> for optional data.</p>",
            table,
            engine.LOOP_LIMIT,
            engine.OUTPUT_LIMIT,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        version = template_snapshot(template=form.instance, user=request.user)
        messages.info(request, f"Saved as version {version.number}.")
        # Template errors are refused by the models' clean(), on their field, with their line
        # and column; unknown variables are only warned about.
        for warning in getattr(form.instance, "content_warnings", []):
            messages.warning(request, warning)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/preview/", wrap(self.preview_view), name="message_templates_preview"),
            path("<int:pk>/compare/", wrap(self.compare_view), name="message_templates_compare"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = get_object_or_404(MessageTemplate, pk=pk)
        if not self.has_view_permission(request, template):
            return HttpResponse(status=403)
        version = template.versions.order_by("-number").first()
        if version is None:
            version = template_snapshot(template=template, user=request.user)
        learner = None
        rendered, error = None, ""
        wanted = (request.GET.get("learner") or request.POST.get("learner") or "").strip()
        if wanted:
            learner = Learner.objects.filter(external_id=wanted).first()
            if learner is None:
                error = f"No learner has the external id {wanted!r}: nothing rendered."
        else:
            learner = Learner.objects.order_by("id").first()
        if learner is not None:
            try:
                rendered = message_render(
                    version=version,
                    context=preview_context(learner=learner),
                    locale=request.GET.get("locale", ""),
                )
            except engine.RenderError as exc:
                error = str(exc)
        if request.method == "POST" and rendered is not None and learner is not None:
            to = request.POST.get("to", "").strip()
            try:
                forms.EmailField().clean(to)
            except ValidationError:
                messages.error(request, f"{to!r} is not an email address.")
            else:
                result = test_send(
                    learner=learner,
                    version=version,
                    to_email=to,
                    context=preview_context(learner=learner),
                )
                if result.sent:
                    messages.success(request, result.message)
                else:
                    messages.error(request, result.message)
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "opts": MessageTemplate._meta,
            "template_obj": template,
            "version": version,
            "learner": learner,
            "rendered": rendered,
            "error": error,
            "locales": sorted(version.content),
            "title": f"Preview: {template.name}",
        }
        return TemplateResponse(request, "message_templates/preview.html", context)

    def compare_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = get_object_or_404(MessageTemplate, pk=pk)
        if not self.has_view_permission(request, template):
            return HttpResponse(status=403)
        numbers = []
        for key in ("a", "b"):
            raw = request.GET.get(key, "")
            if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit(), not int()
                return HttpResponse(f"{key} must be a version number", status=400)
            numbers.append(int(raw))
        versions = {v.number: v for v in template.versions.filter(number__in=numbers)}
        if len(versions) != len(set(numbers)):
            return HttpResponse("no such version", status=404)
        old, new = versions[numbers[0]], versions[numbers[1]]
        differ = difflib.HtmlDiff(wrapcolumn=80)
        diffs = []
        for locale in sorted(set(old.content) | set(new.content)):
            before, after = old.content.get(locale, {}), new.content.get(locale, {})
            for name in ("subject", "preheader", "html", "text"):
                a, b = before.get(name, ""), after.get(name, "")
                if a != b:
                    table = differ.make_table(
                        a.splitlines(), b.splitlines(), f"v{old.number}", f"v{new.number}"
                    )
                    diffs.append((f"[{locale}] {name}", table))
        context = {
            **self.admin_site.each_context(request),
            "opts": MessageTemplate._meta,
            "template_obj": template,
            "old": old,
            "new": new,
            "diffs": diffs,
            "title": f"{template.name}: v{old.number} → v{new.number}",
        }
        return TemplateResponse(request, "message_templates/compare.html", context)
