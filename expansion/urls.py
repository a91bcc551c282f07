"""The project's routes: the admin, the API schema and docs, and each app's own ``urls.py``."""

from typing import Any, cast

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from campaigns import urls as campaigns_urls
from expansion import errors
from expansion.commerce import urls as commerce_urls
from expansion.core.admin_export import export_csv
from expansion.core.favicon import favicon
from experiments import urls as experiments_urls
from learners import urls as learners_urls

# Every admin list exports its filtered rows as CSV (for whoever may view them).
# (django-stubs expect an action to answer a TemplateResponse; a file download is a response.)
admin.site.add_action(cast(Any, export_csv))

# One namespace, v1, for the whole API; each app contributes its routes.
api_v1 = [
    *learners_urls.api_urlpatterns,
    *commerce_urls.api_urlpatterns,
    *campaigns_urls.api_urlpatterns,
    *experiments_urls.api_urlpatterns,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include((api_v1, "v1"))),
    # Any other /api/ path: the API's JSON 404, with DEBUG on too (make run): a client reads
    # the same error body whatever the path, not Django's HTML debug page.
    re_path(r"^api/", errors.api_not_found),
    path("", include(campaigns_urls.urlpatterns)),
    # Provider tracking webhooks (bounces, complaints …): 404 until ANYMAIL_WEBHOOK_SECRET
    # (basic auth) is set; see expansion/webhooks.py.
    path("anymail/", include("expansion.webhooks")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

handler404 = "expansion.errors.not_found"
handler500 = "expansion.errors.server_error"
