"""OpenAPI schema post-processing: every operation documents the errors it can answer.

drf-spectacular describes the success response of each view; the errors come from layers
around it (authentication, scopes, throttling, path lookups, filters and validation), so they
are added here, once, with the body DRF gives them. schemathesis checks every response against
this (tests/api/test_schema_fuzz.py).
"""

from __future__ import annotations

from typing import Any

# Every error has this body (``api_common.exception_handler``); a refused bulk batch adds
# its ``created`` and ``updated`` counts.
ERROR = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "nullable": True},
                    "field": {"type": "string", "nullable": True},
                    "reason": {"type": "string"},
                },
                "required": ["index", "field", "reason"],
            },
        }
    },
    "required": ["errors"],
}

ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("The request is invalid; the body names each item and field, and why.", ERROR),
    "401": ("No valid API key.", ERROR),
    "403": (
        "The API key lacks the scope this request needs, or an admin session may not do this "
        "(sessions only read, with the read_api_by_session permission).",
        ERROR,
    ),
    "404": ("No such object.", ERROR),
    "429": (
        "Too many requests for this API key, or too many failed authentications from this "
        "address; retry after the Retry-After header.",
        ERROR,
    ),
}

# Answered before a body is read (``api_json.FastJSONParser``, ``LengthRequiredMiddleware``).
BODY_ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "411": ("The body came chunked (Transfer-Encoding); send it with Content-Length.", ERROR),
    "413": ("The body exceeds API_MAX_BODY_BYTES.", ERROR),
    "415": ("Not uncompressed UTF-8 JSON (Content-Type, charset or Content-Encoding).", ERROR),
}


def _paginated(operation: dict[str, Any]) -> bool:
    return any(p.get("name") == "cursor" for p in operation.get("parameters", []))


ERROR_REF = {"$ref": "#/components/schemas/Error"}


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """Add the error responses to every API operation that does not describe them already
    (one shared ``Error`` component, referenced), and mark every request body required."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
            responses = operation["responses"]
            errors = dict(ERRORS)
            if method in ("post", "put", "patch"):
                errors.update(BODY_ERRORS)
            for status, (description, _schema) in sorted(errors.items()):
                # Lookups by path, and list pages given a cursor that is not theirs.
                if status == "404" and "{" not in path and not _paginated(operation):
                    continue
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    return result
