"""API plumbing shared by every app: JSON via orjson, cursor pagination, one error shape.

Every error body has the same shape, so clients need one code path::

    {"errors": [{"index": 3, "field": "occurred_at", "reason": "must include a time zone"}]}

``index`` is the item's position in a bulk request (null for whole-request errors).

Query strings are read strictly: a list answers 400 naming each parameter it does not know, gives
twice, or cannot read (a boolean that is not true/false, a date that is not ISO 8601, a page size
out of range), and 404 to a cursor it did not write; nothing is silently ignored.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, cast
from urllib import parse

import django_filters
from django import forms
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.mixins import ListModelMixin
from rest_framework.pagination import Cursor
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from expansion.core.api.batch import BatchError, Spec, batch_items, items_schema
from expansion.core.api.json import BodyError

# Every list orders by id, so a cursor's position is an id: a bigint.
_POSITION = re.compile(r"[0-9]{1,19}")
_MAX_ID = 2**63 - 1


class CursorPagination(pagination.CursorPagination):
    """Stable pages over tables of any size: no OFFSET, no COUNT(*).

    A cursor is only read as this class writes it (base64 of ``o=&r=&p=``, the position an
    id); anything else is 404 "Invalid cursor", as DRF answers a cursor it cannot decode,
    instead of reaching the query as a non-number (a 500).
    """

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 1000
    invalid_cursor_message = "Invalid cursor"

    def _invalid(self) -> exceptions.NotFound:
        return exceptions.NotFound({self.cursor_query_param: [self.invalid_cursor_message]})

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            querystring = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
        except (ValueError, binascii.Error):  # not ASCII, not strict base64
            raise self._invalid() from None
        tokens = parse.parse_qs(querystring, keep_blank_values=True)
        if set(tokens) - {"o", "r", "p"} or any(len(values) != 1 for values in tokens.values()):
            raise self._invalid()
        offset = tokens.get("o", ["0"])[0]
        reverse = tokens.get("r", ["0"])[0]
        position = tokens.get("p", [None])[0]
        if not _POSITION.fullmatch(offset) or reverse not in ("0", "1"):
            raise self._invalid()
        if position is not None and not (
            _POSITION.fullmatch(position) and int(position) <= _MAX_ID
        ):
            raise self._invalid()
        # DRF keeps the position as the text it compares with str(instance.id).
        return Cursor(
            offset=min(int(offset), self.offset_cutoff),
            reverse=reverse == "1",
            position=cast(Any, position),
        )

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,5}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {
                    self.page_size_query_param: [
                        f"must be a whole number from 1 to {self.max_page_size}"
                    ]
                }
            )
        return int(raw)

    def get_paginated_response(self, data: Any) -> Response:
        """DRF's page (``next`` / ``previous`` links, ``results``) plus the bare cursors
        (``next_cursor`` / ``previous_cursor``), for clients that build their own URLs."""
        next_link, previous_link = self.get_next_link(), self.get_previous_link()
        return Response(
            {
                "next": next_link,
                "previous": previous_link,
                "next_cursor": self._cursor_of(next_link),
                "previous_cursor": self._cursor_of(previous_link),
                "results": data,
            }
        )

    def _cursor_of(self, link: str | None) -> str | None:
        if link is None:
            return None
        values = parse.parse_qs(parse.urlsplit(link).query).get(self.cursor_query_param)
        return values[0] if values else None

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        page = super().get_paginated_response_schema(schema)
        for name, which in (("next_cursor", "next"), ("previous_cursor", "previous")):
            page["properties"][name] = {
                "type": "string",
                "nullable": True,
                "description": f"The {which} page's cursor (pass as ?cursor=); null: none.",
            }
        page["required"] = ["next", "previous", "next_cursor", "previous_cursor", "results"]
        return page

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters


def _flatten(detail: Any, prefix: str | None = None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        errors: list[dict[str, Any]] = []
        for key, value in detail.items():
            name = None if key == "non_field_errors" else key
            field = f"{prefix}.{name}" if prefix and name else (name or prefix)
            errors.extend(_flatten(value, field))
        return errors
    if isinstance(detail, list):
        return [error for item in detail for error in _flatten(item, prefix)]
    return [{"index": None, "field": prefix, "reason": str(detail)}]


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, returned in UTC; errors name the query parameter.

    Python reads offsets up to ±23:59; PostgreSQL refuses beyond ±15:59 with a server error
    (schemathesis found ``renews_before=4285-07-15T19:04:37-18:59``), so the value is shifted
    to UTC here. A value too close to the ends of the calendar to shift is out of range.
    """

    default_error_messages = {
        "invalid": "must be an ISO 8601 date-time such as 2026-05-01T09:30:00Z",
    }

    def clean(self, value: Any) -> Any:
        # ?placed_before= (given, empty) is no date-time: refused, not read as "no filter".
        if value == "":
            raise DjangoValidationError(self.error_messages["invalid"], code="invalid")
        return super().clean(value)

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise DjangoValidationError(
                "is out of range: must fall between years 1 and 9999 in UTC", code="invalid"
            ) from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 filter value, compared in UTC (see :class:`UtcDateTimeField`)."""

    field_class = UtcDateTimeField


class StrictBooleanField(forms.Field):
    """true/false (also True/False, 1/0); anything else is an error, not "no filter"."""

    widget = forms.TextInput
    TRUE = frozenset({"true", "True", "1"})
    FALSE = frozenset({"false", "False", "0"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if value in self.TRUE:
            return True
        if value in self.FALSE:
            return False
        raise DjangoValidationError("must be true or false", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, plus: a list refuses query parameters it does not know or gets twice.

    A typo (``?is_activ=false``) used to list everything, as if no filter had been asked for.
    Detail views (no filterset) are left as they were.
    """

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        if not isinstance(view, ListModelMixin):
            return super().filter_queryset(request, queryset, view)
        filterset_class = self.get_filterset_class(view, queryset)
        allowed = set(filterset_class.base_filters) if filterset_class else set()
        paginator = getattr(view, "paginator", None)
        if paginator is not None:
            allowed |= {
                getattr(paginator, "cursor_query_param", "cursor"),
                getattr(paginator, "page_size_query_param", None) or "page_size",
            }
        allowed.add(api_settings.URL_FORMAT_OVERRIDE or "format")
        listing = ", ".join(sorted(allowed))
        errors: dict[str, list[str]] = {}
        for name, values in request.query_params.lists():
            if name not in allowed:
                errors[name[:64]] = [f"is not a query parameter of this list; use {listing}"]
            elif len(values) > 1:
                errors[name] = ["is given more than once; give it once"]
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None and not filterset.is_valid():
            for name, messages in filterset.errors.items():
                errors.setdefault(name, []).extend(messages)
        if filterset_class is not None:
            # Given empty (``?is_active=``), a filter that is not text is an error, not "no
            # filter" (django-filter reads it as not given).
            for name, value in request.query_params.items():
                given = filterset_class.base_filters.get(name)
                if (
                    value == ""
                    and name not in errors
                    and given is not None
                    and not isinstance(given, django_filters.CharFilter)
                ):
                    errors[name] = ["is empty: give a value, or leave the parameter out"]
        if errors:
            raise exceptions.ValidationError(errors)
        return filterset.qs if filterset is not None else queryset


class LengthRequiredMiddleware:
    """A body sent with ``Transfer-Encoding`` (chunked) is 411 Length Required.

    Django's WSGI request reads ``CONTENT_LENGTH`` bytes and nothing when there is none, so a
    chunked bulk upload read as an empty body ("got null"); whether the server decodes chunks
    at all depends on it (gunicorn does, runserver does not). Clients send ``Content-Length``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "HTTP_TRANSFER_ENCODING" not in request.META:
            return self.get_response(request)
        reason = (
            "Transfer-Encoding is not supported: send the body with a Content-Length header "
            "(not chunked)"
        )
        if request.path.startswith("/api/"):
            error = {"index": None, "field": None, "reason": reason}
            response: HttpResponse = JsonResponse({"errors": [error]}, status=411)
        else:
            response = HttpResponse(reason, status=411, content_type="text/plain")
        return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, BodyError):
        return Response({"errors": [exc.error]}, status=exc.status_code)
    if isinstance(exc, BatchError):
        return Response(
            {"errors": [{"index": None, "field": exc.field, "reason": exc.reason}]},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        detail = detail["detail"]
    response.data = {"errors": _flatten(detail)}
    return response


class ErrorItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


# Built with inline_serializer: a field named "errors" would shadow Serializer.errors.
ErrorSerializer = inline_serializer("Error", {"errors": ErrorItemSerializer(many=True)})
SyncResultSerializer = inline_serializer(
    "SyncResult",
    {
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "errors": ErrorItemSerializer(many=True),
    },
)


class BulkUpsertView(APIView):
    """POST ``{"items": [...]}``: upsert every valid item; 400 lists the bad ones.

    Subclasses set ``specs`` (for the schema) and ``upsert`` (the service function).
    """

    specs: Mapping[str, Spec] = {}
    upsert: Callable[..., Any]

    def post(self, request: Request) -> Response:
        items = batch_items(request.data)
        result = type(self).upsert(items=items)
        return Response(
            result.as_dict(),
            status=status.HTTP_400_BAD_REQUEST if result.errors else status.HTTP_200_OK,
        )


BULK_DESCRIPTION = (
    'A JSON object `{"items": [...]}` of up to 1,000 items, each created or updated by its '
    "identifier. Every valid item is written even when others are refused: the answer counts "
    "what was created and updated and lists each refused item by its index, field and reason "
    "(400 when any was refused). A body that is not such an object is refused whole (400, "
    "`errors` only)."
)

# A 400 of a bulk endpoint: the per-item result (valid items written), or the whole body
# refused (only `errors`). anyOf, not oneOf: a per-item result is also a valid Error body.
BULK_REFUSED = {
    "anyOf": [
        {"$ref": "#/components/schemas/SyncResult"},
        {"$ref": "#/components/schemas/Error"},
    ]
}


def bulk_schema(specs: Mapping[str, Spec], *, summary: str, tags: list[str]) -> Callable:
    return extend_schema(
        summary=summary,
        description=BULK_DESCRIPTION,
        tags=tags,
        request={"application/json": items_schema(specs)},
        responses={
            200: SyncResultSerializer,
            400: BULK_REFUSED,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
    )
