"""Project-wide middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Paths whose responses no cache may keep: the API's bodies carry learners' personal data
# and the answers of one key, and its errors are per request.
NO_STORE_PREFIXES = ("/api/",)


def no_store(get_response: Callable[[HttpRequest], HttpResponse]):
    """``Cache-Control: no-store`` on every response under ``NO_STORE_PREFIXES`` — errors,
    404s and 429s included, whatever the view set."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if request.path.startswith(NO_STORE_PREFIXES):
            response["Cache-Control"] = "no-store"
        return response

    return middleware
