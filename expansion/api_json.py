"""JSON in and out through orjson. Kept apart from the views module: DRF imports these
classes while it is still defining APIView."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import exceptions, parsers, renderers


class FastJSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        body = stream.read() if stream is not None else b""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise exceptions.ParseError(f"Malformed JSON: {error}") from None


class FastJSONRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=str)
