"""API plumbing shared by every app: JSON via orjson, cursor pagination, one error shape.

Every error body has the same shape, so clients need one code path::

    {"errors": [{"index": 3, "field": "occurred_at", "reason": "must include a time zone"}]}

``index`` is the item's position in a bulk request (null for whole-request errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import django_filters
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .batch import BatchError, Spec, batch_items, items_schema


class CursorPagination(pagination.CursorPagination):
    """Stable pages over tables of any size: no OFFSET, no COUNT(*)."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 1000


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


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 filter value, compared in UTC.

    Python reads offsets up to ±23:59; PostgreSQL refuses beyond ±15:59 with a server error
    (schemathesis found ``renews_before=4285-07-15T19:04:37-18:59``). A value too close to the
    ends of the calendar to shift is refused as a bad filter (400), not a crash.
    """

    def filter(self, qs: Any, value: Any) -> Any:
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise exceptions.ValidationError({self.field_name: ["out of range"]}) from None
        return super().filter(qs, value)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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


def bulk_schema(specs: Mapping[str, Spec], *, summary: str, tags: list[str]) -> Callable:
    return extend_schema(
        summary=summary,
        tags=tags,
        request={"application/json": items_schema(specs)},
        responses={
            200: SyncResultSerializer,
            400: ErrorSerializer,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
    )
