"""Path converters of the API, registered on import: every app's ``urls.py`` imports this
module before it declares a route that uses ``<ext:…>``."""

from django.urls import register_converter


class ExternalIdConverter:
    """A path segment naming an external id or sku: no '/', no control characters (the sync
    API refuses those at write, ``batch.identifier``). Anything else is no route: 404."""

    regex = r"[^/\x00-\x1f\x7f]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ExternalIdConverter, "ext")
