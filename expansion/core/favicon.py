"""The site's icon at ``/favicon.ico``: browsers ask for it on a visit's first page, and
without it that page logged a 404 in the console."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

# The admin's header colour with an "E"; SVG, which browsers take at this path too.
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#417690"/>'
    '<path d="M10 8h12v3.5h-8v3h7v3.5h-7v3h8V24H10z" fill="#f5dd5d"/></svg>'
)


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(ICON, content_type="image/svg+xml")
