"""The admin site: a home that says what needs doing (``expansion.admin_home``) and a menu
grouped by job — Audience, Offers, Messages, Campaigns, Experiments, Insights, Settings —
with the plumbing (users, periodic tasks) last.

Installed as Django's default site (``ExpansionAdminConfig`` in ``INSTALLED_APPS``), so every
``@admin.register`` lands here. An app's own page (``/admin/<app>/``) still lists that app's
models as Django does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

# (group, [(app_label, object_name) …]) in menu order. A model not named here goes to
# "Other" before the plumbing, so nothing registered is ever hidden.
MENU: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Audience",
        [
            ("learners", "Learner"),
            ("learners", "Segment"),
            ("learners", "Account"),
            ("learners", "Course"),
            ("learners", "Enrollment"),
            ("learners", "Event"),
            ("learners", "LearnerScore"),
            ("learners", "SegmentMembership"),
            ("learners", "RfmSegment"),
            ("learners", "EmailSuppression"),
        ],
    ),
    (
        "Offers",
        [
            ("expansion", "Offer"),
            ("expansion", "Product"),
            ("expansion", "Bundle"),
            ("expansion", "TierLadder"),
            ("expansion", "ProductAffinity"),
            ("expansion", "PairReview"),
        ],
    ),
    ("Messages", [("message_templates", "MessageTemplate"), ("campaigns", "Send")]),
    ("Campaigns", [("campaigns", "Campaign"), ("campaigns", "JourneyMoment")]),
    ("Experiments", [("experiments", "Experiment")]),
    ("Insights", [("expansion", "Order"), ("expansion", "Subscription")]),
    (
        "Settings",
        [
            ("campaigns", "GuardrailPolicy"),
            ("expansion", "CommerceSettings"),
            ("experiments", "ExperimentSettings"),
            ("learners", "ScoringModel"),
            ("learners", "ScoringRun"),
            ("expansion", "ApiKey"),
        ],
    ),
]
# The dashboards, listed under Insights for whoever may open them: (name, url name, perm).
DASHBOARDS = [
    ("Revenue dashboard", "admin:expansion_revenue_dashboard", "expansion.view_order"),
    ("Campaign funnel", "admin:campaigns_campaign_funnel", "campaigns.view_campaign"),
    ("Scores and segments", "admin:learners_score_dashboard", "learners.view_learnerscore"),
]
PLUMBING = "Users and plumbing"


class ExpansionAdminSite(admin.AdminSite):
    site_header = "Expansion"
    site_title = "Expansion"
    index_title = "Home"
    index_template = "expansion/admin_home.html"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        return grouped(apps, request)

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None):
        from expansion.admin_home import home_context  # noqa: PLC0415 - apps load first

        response = super().index(
            request, {**home_context(user=request.user), **(extra_context or {})}
        )
        assert isinstance(response, TemplateResponse)
        return response


def grouped(apps: list[dict], request: HttpRequest) -> list[dict]:
    """Django's app list regrouped by ``MENU`` (same model entries, so permissions and links
    are Django's); the dashboards under Insights; anything unlisted under "Other"; users,
    groups and periodic tasks last."""
    models = {(app["app_label"], m["object_name"]): m for app in apps for m in app["models"]}
    placed: set[tuple[str, str]] = set()
    groups = []
    for name, keys in MENU:
        entries = [models[key] for key in keys if key in models]
        placed.update(key for key in keys if key in models)
        if name == "Insights":
            entries = _dashboards(request) + entries
        if entries:
            groups.append(_group(name, entries))
    plumbing_apps = {"auth", "django_celery_beat"}
    other = [
        m
        for app in apps
        if app["app_label"] not in plumbing_apps
        for m in app["models"]
        if (app["app_label"], m["object_name"]) not in placed
    ]
    if other:
        groups.append(_group("Other", other))
    plumbing = [m for app in apps if app["app_label"] in plumbing_apps for m in app["models"]]
    if plumbing:
        groups.append(_group(PLUMBING, plumbing))
    return groups


def _group(name: str, models: list[dict]) -> dict:
    slug = name.lower().replace(" ", "-")
    return {
        "name": name,
        "app_label": slug,
        "app_url": f"{reverse('admin:index')}#menu-{slug}",
        "has_module_perms": True,
        "models": models,
    }


def _dashboards(request: HttpRequest) -> list[dict]:
    out = []
    for name, url_name, perm in DASHBOARDS:
        if not request.user.has_perm(perm):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:  # an app not installed
            continue
        out.append(
            {
                "name": name,
                "object_name": url_name.split(":")[-1],
                "perms": {"view": True},
                "admin_url": url,
                "add_url": None,
                "view_only": True,
            }
        )
    return out


class ExpansionAdminConfig(AdminConfig):
    default_site = "expansion.admin_site.ExpansionAdminSite"
