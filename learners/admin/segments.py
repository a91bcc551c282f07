"""Admin for segments: the rule editor with its live preview, and memberships."""

import json

from django import forms
from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone

from expansion.core.charts import bar_chart

from ..models import Course, RfmSegment, Segment, SegmentMembership
from ..segments import (
    FIELDS_HELP,
    SegmentError,
    builder_schema,
    compile_definition,
    segment_members,
    segment_preview,
    segment_refresh,
)


class MembershipInline(admin.TabularInline):
    model = SegmentMembership
    fk_name = "learner"
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("segment", "entered_at", "exited_at")
    readonly_fields = fields
    verbose_name_plural = "Segments (current and past)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("segment")


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description", "definition", "is_active"]
        widgets = {
            "definition": forms.Textarea(
                attrs={"rows": 14, "cols": 90, "style": "font-family: monospace"}
            )
        }

    def clean_definition(self):
        definition = self.cleaned_data["definition"]
        try:
            compile_definition(definition)
        except SegmentError as error:
            raise forms.ValidationError(error.messages[0]) from None
        return definition


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    change_form_template = "learners/segment_change_form.html"
    list_display = ["name", "members", "is_active", "refreshed_at", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["members", "refreshed_at", "created_by"]
    actions = ["refresh_now"]

    @admin.display(description="Size", ordering="size")
    def members(self, obj: Segment) -> str:
        """The stored size once the membership refresh has run on this definition; before
        that (a new or edited segment), the live count of who matches it now."""
        if obj.pk is None:
            return "—"
        if obj.refreshed_at is not None and obj.refreshed_at >= obj.updated_at:
            return f"{obj.size:,}"
        try:
            live = segment_members(obj.definition).count()
        except SegmentError:
            return "—"
        return f"{live:,} (live count; the membership refresh has not run on this definition yet)"

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="learners_segment_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        if request.method != "POST" or not self.has_view_permission(request):
            return JsonResponse({"ok": False, "error": "POST a definition"}, status=405)
        try:
            definition = json.loads(request.body or b"null")
        except json.JSONDecodeError as error:
            return JsonResponse({"ok": False, "error": f"not valid JSON: {error}"})
        return JsonResponse(segment_preview(definition))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["rule_reference"] = FIELDS_HELP
        context["builder_schema"] = builder_schema(
            rfm_segments=list(
                RfmSegment.objects.order_by("name").values_list("name", flat=True).distinct()
            ),
            courses=list(
                Course.objects.order_by("external_id").values_list("external_id", flat=True)[:500]
            ),
        )
        if obj is not None:
            history = [(s.day.strftime("%m-%d"), s.size) for s in obj.snapshots.all()][-30:]
            context["size_chart"] = bar_chart(history, title="Members by day") if history else None
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Refresh membership now")
    def refresh_now(self, request, queryset) -> None:
        now = timezone.now()
        sizes = [segment_refresh(segment=s, as_of=now) for s in queryset]
        self.message_user(request, f"Refreshed {len(sizes)} segment(s): sizes {sizes}.")


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    list_display = ["segment", "learner", "entered_at", "exited_at"]
    list_filter = ["segment", ("exited_at", admin.EmptyFieldListFilter)]
    search_fields = ["=learner__external_id"]
    list_select_related = ["segment", "learner"]
    raw_id_fields = ["learner"]
    show_full_result_count = False
    date_hierarchy = "entered_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
