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
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import escape

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

    def get_urls(self):
        return [
            path(
                "import/<str:kind>/",
                self.admin_view(self.csv_import_view),
                name="csv_import",
            ),
            *super().get_urls(),
        ]

    def csv_import_view(self, request: HttpRequest, kind: str) -> HttpResponseBase:
        """CSV import of learners, orders or events (``expansion.csv_import``): the form, then
        the import's progress streamed as it goes, and what was written or why nothing was."""
        from expansion import csv_import  # noqa: PLC0415 - apps load first

        spec = csv_import.KINDS.get(kind)
        if spec is None:
            raise Http404("no such import")
        if not request.user.has_perm(spec.permission):
            raise PermissionDenied
        context = {
            **self.each_context(request),
            "title": f"Import {spec.label} from CSV",
            "kind": kind,
            "spec": spec,
            "columns": sorted([*spec.columns, *spec.line_columns]),
            "limit_rows": csv_import.MAX_ROWS,
            "list_url": reverse(spec.changelist),
        }
        if request.method != "POST":
            return TemplateResponse(request, "expansion/csv_import.html", context)
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise csv_import.CsvError("choose a CSV file to import")
            if upload.size and upload.size > csv_import.MAX_BYTES:
                raise csv_import.CsvError(
                    f"the file is {upload.size:,} bytes; the limit is {csv_import.MAX_BYTES:,}"
                )
            parsed = csv_import.csv_parse(kind=spec, data=upload.read())
        except csv_import.CsvError as error:
            context["file_error"] = str(error)
            return TemplateResponse(request, "expansion/csv_import.html", context, status=400)
        page = render_to_string(
            "expansion/csv_import.html", {**context, "running": True}, request=request
        )
        head, _, tail = page.partition("<!--PROGRESS-->")
        name = upload.name

        def stream():
            yield head
            yield f"<p>{parsed.total_rows:,} rows of {escape(name)}: importing…</p>\n"
            steps = csv_import.import_steps(kind=spec, parsed=parsed)
            while True:  # each batch's progress as it ends
                try:
                    done, total = next(steps)
                except StopIteration as finished:
                    outcome = finished.value
                    break
                yield f'<p class="import-progress">{done:,} of {total:,} items checked…</p>\n'
            yield render_to_string(
                "expansion/csv_import_outcome.html",
                {"outcome": outcome, "spec": spec, "list_url": context["list_url"]},
            )
            yield tail

        return StreamingHttpResponse(stream(), content_type="text/html; charset=utf-8")

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
