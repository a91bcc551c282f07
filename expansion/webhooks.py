"""The provider tracking webhooks (django-anymail), closed unless authenticated.

A forged hard bounce suppresses an address for good, so anymail's views are mounted behind
``webhooks_enabled``: each answers 404 until ``ANYMAIL_WEBHOOK_SECRET`` ("user:password",
HTTP basic auth, checked by anymail) is set and ``TRACKING_WEBHOOKS`` is on. Production mode
refuses to start without the secret (settings). Read per request, so that a deployment (or a
test) that sets the secret needs no new URL configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from anymail import urls as anymail_urls
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern


def webhooks_enabled() -> bool:
    return bool(settings.TRACKING_WEBHOOKS and settings.ANYMAIL.get("WEBHOOK_SECRET"))


def _guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not webhooks_enabled():
            raise Http404("tracking webhooks are off")
        return view(request, *args, **kwargs)

    return guarded


urlpatterns = [
    URLPattern(pattern.pattern, _guarded(pattern.callback), pattern.default_args, pattern.name)
    for pattern in anymail_urls.urlpatterns
    if isinstance(pattern, URLPattern)
]
app_name = getattr(anymail_urls, "app_name", None)
