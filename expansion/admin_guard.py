"""Query strings no admin page can use are a 400 before any page reads them.

Django's changelists pass unknown query parameters on as lookups, and its date drill-down turns
``__year``/``__month``/``__day`` into a ``datetime``: a NUL character (PostgreSQL refuses it in
a text value), an integer past 64 bits (bigint's and the drivers' limit) or a date part past a
C int raised from inside the query and the page was a 500 — on every changelist, ours and
Django's own (users, periodic tasks) alike. Checked once here for every admin URL, so a page
added later is covered too (tests/security/test_admin_odd_queries.py sweeps them all).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse

_INTEGER = re.compile(r"[+-]?[0-9]+")
_BIGINT = 2**63 - 1
# A date drill-down part: a year has at most four digits (datetime's range), a month or day two.
_DATE_PART = ("__year", "__month", "__day")


def query_problem(request: HttpRequest) -> str:
    """Why the request's query string is refused ("" if it is not): a NUL character in a name or
    value, an integer no database column holds, a date part no date has."""
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return "a NUL character"
        for value in values:
            if not _INTEGER.fullmatch(value):
                continue
            if abs(int(value)) > _BIGINT:
                return "a number out of range"
            if key.endswith(_DATE_PART) and len(value.lstrip("+-")) > 4:
                return "a date part out of range"
    return ""


class AdminQueryGuard:
    """A 400 naming what is wrong for an admin URL whose query string no page can use."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._prefix is None:
            self._prefix = reverse("admin:index")
        if request.path.startswith(self._prefix) and request.META.get("QUERY_STRING"):
            problem = query_problem(request)
            if problem:
                return HttpResponseBadRequest(
                    f"Bad request: the query string holds {problem}.\n",
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
