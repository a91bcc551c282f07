"""The commerce settings' admin (one row)."""

from django.contrib import admin

from expansion.commerce.models import CommerceSettings
from expansion.core.singleton import SingletonAdmin


@admin.register(CommerceSettings)
class CommerceSettingsAdmin(SingletonAdmin):
    """One row: the discount ceiling, the affinity gate and the opportunity thresholds."""

    fieldsets = [
        ("Discounts", {"fields": ["max_discount_percent", "discount_cooldown_days"]}),
        (
            "Affinity and the ethics gate",
            {
                "fields": [
                    "affinity_min_support",
                    "affinity_min_orders",
                    "affinity_min_lift",
                    "affinity_window_days",
                ]
            },
        ),
        (
            "Top opportunities",
            {
                "fields": [
                    "quota_opportunity",
                    "seat_opportunity",
                    "feature_request_events",
                    "feature_request_days",
                ]
            },
        ),
    ]
