"""Journey moments and the guardrail policy."""

from __future__ import annotations

from django.contrib import admin

from expansion.core.singleton import SingletonAdmin

from ..models import GuardrailPolicy, JourneyMoment


@admin.register(JourneyMoment)
class JourneyMomentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "offers_allowed", "position", "description"]
    list_editable = ["offers_allowed", "position"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(GuardrailPolicy)
class GuardrailPolicyAdmin(SingletonAdmin):
    fieldsets = [
        (
            "Frequency caps (marketing email; the learner's own time zone)",
            {"fields": ["email_cap", "cap_window_days", "email_cap_day", "email_cap_week"]},
        ),
        ("In-app", {"fields": ["in_app_cap_day"]}),
        (
            "Quiet hours (learner's local time; sends wait, never drop)",
            {"fields": ["quiet_start", "quiet_end"]},
        ),
        (
            "Suppression",
            {
                "fields": [
                    "min_lps",
                    "suppress_at_risk",
                    "suppress_open_ticket",
                    "suppress_payment_failed",
                    "suppress_refund",
                    "declined_days",
                    "bought_days",
                    "onboarding_days",
                ]
            },
        ),
        ("Priority", {"fields": ["multi_trigger_boost"]}),
    ]
