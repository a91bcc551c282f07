"""Error pages: the API's JSON error body under /api/, Django's pages elsewhere."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf as csrf_views
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt


def _error(reason: str) -> dict[str, Any]:
    """The API's error body (``expansion.core.api.views.exception_handler``)."""
    return {"errors": [{"index": None, "field": None, "reason": reason}]}


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(_error("Not found."), status=404)
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


@csrf_exempt  # an unknown API path answers 404 to any method, never a CSRF page
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    return JsonResponse(_error("Not found."), status=404)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: the API's JSON error under /api/, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse(
            _error("CSRF check failed: an admin session writing to the API; use an API key."),
            status=403,
        )
    return csrf_views.csrf_failure(request, reason=reason)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(_error("Server error; it has been logged."), status=500)
    return defaults.server_error(request)
