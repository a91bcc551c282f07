"""Sync API for learners, courses, enrollments and events (``/api/v1/``).

One view per operation: list, detail, bulk upsert (``POST …/bulk/``). Writes go through the
service functions in ``sync.py`` and ``ingest.py``; serializers here only shape output.
"""

from __future__ import annotations

import re

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from expansion.core.api.batch import batch_items, identifier
from expansion.core.api.filters import TextFilter
from expansion.core.api.views import (
    BulkUpsertView,
    ErrorItemSerializer,
    ErrorSerializer,
    StrictBooleanFilter,
    UtcDateTimeFilter,
    bulk_schema,
)

from . import ingest, sync
from .event_items import KNOWN_KINDS, REQUIRED_FIELDS
from .models import Course, Enrollment, Event, Learner, Module
from .scoring import learner_scores

TAGS = ["learners"]


class LearnerOut(serializers.ModelSerializer):
    account: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, allow_null=True
    )
    # "" for a learner without an address: not ``format: email`` (strict clients refuse it).
    email = serializers.CharField(read_only=True)

    class Meta:
        model = Learner
        fields = [
            "external_id",
            "email",
            "name",
            "account",
            "time_zone",
            "locale",
            "marketing_opt_in",
            "unsubscribed_at",
            "attributes",
            "role",
            "signed_up_at",
            "created_at",
            "updated_at",
        ]


class ModuleOut(serializers.ModelSerializer):
    class Meta:
        model = Module
        fields = ["external_id", "title", "position", "is_final"]


class CourseOut(serializers.ModelSerializer):
    creator: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    modules = ModuleOut(many=True, read_only=True)
    # An http(s) address or empty (as a URLField its schema said "uri", which "" is not).
    url = serializers.CharField(read_only=True, help_text="Where the course lives, or empty.")

    class Meta:
        model = Course
        fields = [
            "external_id",
            "title",
            "creator",
            "url",
            "learning_path",
            "path_position",
            "modules",
            "created_at",
            "updated_at",
        ]


class EnrollmentOut(serializers.ModelSerializer):
    learner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )
    course: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "learner",
            "course",
            "enrolled_at",
            "completed_at",
            "progress",
            "updated_at",
        ]


class EventOut(serializers.ModelSerializer):
    learner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True
    )
    course: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, allow_null=True
    )
    module: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, allow_null=True
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "idempotency_key",
            "learner",
            "kind",
            "occurred_at",
            "value",
            "course",
            "module",
            "properties",
            "received_at",
        ]


class LearnerFilter(django_filters.FilterSet):
    email = TextFilter(lookup_expr="iexact")
    account = TextFilter(field_name="account__external_id")
    updated_after = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    marketing_opt_in = StrictBooleanFilter()

    class Meta:
        model = Learner
        fields = ["email", "account", "updated_after", "marketing_opt_in"]


class CourseFilter(django_filters.FilterSet):
    learning_path = TextFilter()
    creator = TextFilter(field_name="creator__username")

    class Meta:
        model = Course
        fields = ["learning_path", "creator"]


class EnrollmentFilter(django_filters.FilterSet):
    learner = TextFilter(field_name="learner__external_id")
    course = TextFilter(field_name="course__external_id")
    completed = StrictBooleanFilter(field_name="completed_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Enrollment
        fields = ["learner", "course", "completed"]


class EventFilter(django_filters.FilterSet):
    learner = TextFilter(field_name="learner__external_id")
    kind = TextFilter()
    course = TextFilter(field_name="course__external_id")
    occurred_after = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["learner", "kind", "course", "occurred_after", "occurred_before"]


@extend_schema(tags=TAGS)
class LearnerList(generics.ListAPIView):
    queryset = Learner.objects.select_related("account")
    serializer_class = LearnerOut
    filterset_class = LearnerFilter


@extend_schema(tags=TAGS)
class LearnerDetail(generics.RetrieveAPIView):
    queryset = Learner.objects.select_related("account")
    serializer_class = LearnerOut
    lookup_field = "external_id"


@bulk_schema(sync.LEARNER_SPECS, summary="Upsert learners", tags=TAGS)
class LearnerBulk(BulkUpsertView):
    upsert = staticmethod(sync.learners_upsert)


@extend_schema(tags=TAGS)
class CourseList(generics.ListAPIView):
    queryset = Course.objects.select_related("creator").prefetch_related("modules")
    serializer_class = CourseOut
    filterset_class = CourseFilter


@extend_schema(tags=TAGS)
class CourseDetail(generics.RetrieveAPIView):
    queryset = Course.objects.select_related("creator").prefetch_related("modules")
    serializer_class = CourseOut
    lookup_field = "external_id"


@bulk_schema(sync.COURSE_SPECS, summary="Upsert courses with their modules", tags=TAGS)
class CourseBulk(BulkUpsertView):
    upsert = staticmethod(sync.courses_upsert)


@extend_schema(tags=TAGS)
class EnrollmentList(generics.ListAPIView):
    queryset = Enrollment.objects.select_related("learner", "course")
    serializer_class = EnrollmentOut
    filterset_class = EnrollmentFilter


@extend_schema(tags=TAGS)
class EnrollmentDetail(generics.RetrieveAPIView):
    queryset = Enrollment.objects.select_related("learner", "course")
    serializer_class = EnrollmentOut


@bulk_schema(sync.ENROLLMENT_SPECS, summary="Upsert enrollments", tags=TAGS)
class EnrollmentBulk(BulkUpsertView):
    upsert = staticmethod(sync.enrollments_upsert)


@extend_schema(tags=TAGS)
class EventList(generics.ListAPIView):
    queryset = Event.objects.select_related("learner", "course", "module")
    serializer_class = EventOut
    filterset_class = EventFilter


@extend_schema(tags=TAGS)
class EventDetail(generics.RetrieveAPIView):
    queryset = Event.objects.select_related("learner", "course", "module")
    serializer_class = EventOut


EVENT_ITEM_SCHEMA = {
    "type": "object",
    "required": list(REQUIRED_FIELDS),
    "additionalProperties": False,
    "properties": {
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
        "learner": identifier().schema,  # type: ignore[attr-defined]
        "kind": {
            "type": "string",
            # The same rule as the ingest's check (learners.event_items): a known kind or
            # custom.<name>.
            "pattern": "^("
            + "|".join(sorted(re.escape(k) for k in KNOWN_KINDS))
            + r"|custom\.[a-z0-9][a-z0-9_.-]{0,55})$",
            "description": "One of " + ", ".join(sorted(KNOWN_KINDS)) + ", or custom.<name>",
        },
        "occurred_at": {"type": "string", "format": "date-time"},
        "value": {"type": "number", "nullable": True},
        "course": {**identifier().schema, "nullable": True},  # type: ignore[attr-defined]
        "module": {**identifier().schema, "nullable": True},  # type: ignore[attr-defined]
        "properties": {"type": "object", "additionalProperties": True},
    },
}


IngestResultSerializer = inline_serializer(
    "IngestResult",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": inline_serializer(
            "Duplicate",
            {
                "index": serializers.IntegerField(),
                "idempotency_key": serializers.CharField(),
            },
            many=True,
        ),
        "errors": ErrorItemSerializer(many=True),
    },
)
# A 400 of the event ingest: the per-item result (valid events stored), or the whole body
# refused (only `errors`); anyOf, as for the other bulk endpoints.
INGEST_REFUSED = {
    "anyOf": [
        {"$ref": "#/components/schemas/IngestResult"},
        {"$ref": "#/components/schemas/Error"},
    ]
}


class EventIngest(APIView):
    @extend_schema(
        summary="Ingest a batch of events",
        description=(
            "Up to API_BATCH_LIMIT (1,000) events. Idempotent by idempotency_key: replayed "
            "events are listed under duplicates and not stored again. Valid events are stored "
            "even when others are refused (400, with each bad item's index, field and reason)."
        ),
        tags=TAGS,
        request={
            "application/json": {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {"type": "array", "minItems": 1, "items": EVENT_ITEM_SCHEMA}
                },
            }
        },
        responses={
            200: IngestResultSerializer,
            400: INGEST_REFUSED,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
    )
    def post(self, request: Request) -> Response:
        items = batch_items(request.data)
        result = ingest.events_ingest(items=items)
        return Response(
            result.as_dict(),
            status=status.HTTP_400_BAD_REQUEST if result.errors else status.HTTP_200_OK,
        )


class ComponentsOut(serializers.Serializer):
    completion = serializers.FloatField()
    assessment = serializers.FloatField()
    community = serializers.FloatField()
    downloads = serializers.FloatField()
    login = serializers.FloatField()


class RfmOut(serializers.Serializer):
    recency = serializers.IntegerField(allow_null=True)
    frequency = serializers.IntegerField(allow_null=True)
    monetary = serializers.IntegerField(allow_null=True)
    cell = serializers.CharField()
    segment = serializers.CharField()
    move = serializers.CharField(allow_null=True)
    do_not_pitch = serializers.BooleanField()


class EnrollmentScoreOut(serializers.Serializer):
    course = serializers.CharField()
    lps = serializers.FloatField()
    band = serializers.CharField()
    components = ComponentsOut()


class MembershipOut(serializers.Serializer):
    segment = serializers.CharField()
    entered_at = serializers.DateTimeField()


class LearnerScoresOut(serializers.Serializer):
    learner = serializers.CharField()
    scored = serializers.BooleanField()
    lps = serializers.FloatField(allow_null=True)
    band = serializers.CharField(allow_null=True)
    components = ComponentsOut(allow_null=True)
    explanation = serializers.ListField(child=serializers.CharField())
    model_version = serializers.IntegerField(allow_null=True)
    rfm = RfmOut(allow_null=True)
    stage = serializers.CharField(allow_null=True)
    flags = serializers.ListField(child=serializers.CharField())
    segments = MembershipOut(many=True)
    enrollments = EnrollmentScoreOut(many=True)
    computed_at = serializers.DateTimeField(allow_null=True)


class LearnerScores(APIView):
    @extend_schema(
        summary="A learner's scores, components, RFM, stage, flags and segments",
        tags=TAGS,
        responses={200: LearnerScoresOut, 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        learner = generics.get_object_or_404(Learner, external_id=external_id)
        return Response(LearnerScoresOut(learner_scores(learner=learner)).data)
