"""In-app channel API: the offer card for a moment, and the learner's feedback on it."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from learners.models import Learner

from .inapp import FEEDBACK_KINDS, OfferFeedbackError, card_payload, offer_card, offer_feedback
from .models import DismissReason, Send
from .widget import TOKEN_SECONDS, widget_token


class OfferRef(serializers.Serializer):
    name = serializers.CharField()
    product = serializers.CharField()


class Tracking(serializers.Serializer):
    impression = serializers.URLField()
    click = serializers.URLField()
    accept = serializers.URLField()
    dismiss = serializers.URLField()


class CardOut(serializers.Serializer):
    send = serializers.IntegerField()
    campaign = serializers.CharField()
    moment = serializers.CharField()
    title = serializers.CharField()
    body_html = serializers.CharField()
    body_text = serializers.CharField()
    cta_url = serializers.CharField(help_text="Signed click-tracking redirect to the offer.")
    reason = serializers.CharField(help_text="Why this learner, now, in plain words.")
    expires_at = serializers.DateTimeField()
    offer = OfferRef(allow_null=True)
    tracking = Tracking()


class OffersOut(serializers.Serializer):
    offer = CardOut(allow_null=True)


class FeedbackIn(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=DismissReason.choices, required=False, help_text="Required for dismiss."
    )


class FeedbackOut(serializers.Serializer):
    send = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    seen_at = serializers.DateTimeField(allow_null=True)
    clicked_at = serializers.DateTimeField(allow_null=True)
    dismissed_at = serializers.DateTimeField(allow_null=True)
    dismiss_reason = serializers.CharField()


class OffersQuery(serializers.Serializer):
    moment = serializers.RegexField(
        # ``\Z``, not ``$`` (which SlugField uses and which lets a trailing newline through);
        # the value as given, not trimmed.
        r"^[-a-zA-Z0-9_]*\Z",
        max_length=40,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="A journey moment's slug.",
        error_messages={"invalid": "must be a slug: letters, digits, - and _"},
    )


class LearnerOffers(APIView):
    @extend_schema(
        summary="The learner's in-app offer card for a journey moment",
        description="The highest-priority live in-app offer the campaigns decided for this "
        "learner (after every guardrail), rendered, with its reason, expiry and tracking "
        "endpoints; `offer` is null when there is none. Read scope. Reading it changes "
        "nothing: POST its `tracking.impression` when the card is shown, which records it "
        "sent and seen (a click, accept or dismissal of a card not yet reported does too).",
        tags=["in-app"],
        parameters=[OffersQuery],
        responses={200: OffersOut},
    )
    def get(self, request: Request, external_id: str) -> Response:
        query = OffersQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        learner = generics.get_object_or_404(Learner, external_id=external_id)
        card = offer_card(learner=learner, moment=query.validated_data.get("moment", ""))
        body = {"offer": card_payload(card, base=settings.SITE_URL) if card else None}
        return Response(OffersOut(body).data)


class OfferFeedback(APIView):
    @extend_schema(
        summary="Record an impression, click, accept or dismissal of an in-app offer",
        description="Write scope. An impression records the card sent and seen; the first "
        "report of any kind on a card not yet reported records it sent. A dismissal needs "
        "`reason` (not_now, not_relevant, too_expensive, already_have, other); it is stored "
        "as a declined offer, which keeps further offers away for the decline window. "
        "Impressions and dismissals count once.",
        tags=["in-app"],
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                OpenApiParameter.PATH,
                enum=list(FEEDBACK_KINDS),
                description="What the learner did with the card.",
            )
        ],
        request=FeedbackIn,
        responses={200: FeedbackOut},
    )
    def post(self, request: Request, pk: int, kind: str) -> Response:
        send = generics.get_object_or_404(Send, pk=pk, channel="in_app", is_test=False)
        data = FeedbackIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            send = offer_feedback(
                send=send, kind=kind, reason=data.validated_data.get("reason", "")
            )
        except OfferFeedbackError as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]}) from exc
        return Response(FeedbackOut(send).data)


class WidgetTokenOut(serializers.Serializer):
    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds.")
    script = serializers.URLField()


class WidgetToken(APIView):
    @extend_schema(
        summary="A short-lived token for the learner's embeddable widget",
        description="Made by the platform's server (write scope) and put in the learner's "
        "page with `/static/campaigns/widget.js`; the browser never holds an API key. The "
        "token reads only this learner's offer and path and reports only on their own sends, "
        "for an hour.",
        tags=["in-app"],
        request=None,
        responses={200: WidgetTokenOut},
    )
    def post(self, request: Request, external_id: str) -> Response:
        learner = generics.get_object_or_404(Learner, external_id=external_id)
        body = {
            "token": widget_token(learner),
            "expires_in": TOKEN_SECONDS,
            "script": f"{settings.SITE_URL}/static/campaigns/widget.js",
        }
        return Response(WidgetTokenOut(body).data)
