"""The embeddable widget's endpoints: a browser holds a short-lived signed learner token, never
an API key.

The platform's server asks for a token (``POST /api/v1/learners/{id}/widget-token/``, write
scope) and puts it in its page with ``/w/widget.js``. The widget then reads the learner's offer
card and learning-path progress and reports impressions, clicks and dismissals through ``/w/``,
which accepts only that token, only for that learner's own sends, and only for an hour.
Cross-origin by design (the platform's pages are on another host); no cookies are used.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from learners.models import Course, Enrollment, Learner

from .inapp import LIVE, OfferFeedbackError, card_payload, offer_card, offer_feedback
from .models import Send

WIDGET_SALT = "expansion.campaigns.widget"
TOKEN_SECONDS = 3600


def widget_token(learner: Learner) -> str:
    return signing.TimestampSigner(salt=WIDGET_SALT).sign_object({"l": learner.pk})


def widget_token_read(token: str) -> int | None:
    try:
        data = signing.TimestampSigner(salt=WIDGET_SALT).unsign_object(token, max_age=TOKEN_SECONDS)
    except (signing.BadSignature, signing.SignatureExpired):
        return None
    learner = data.get("l") if isinstance(data, dict) else None
    return learner if isinstance(learner, int) else None


# A journey moment's slug, as the API's LearnerOffers reads it (empty: any moment).
MOMENT = re.compile(r"[-a-zA-Z0-9_]{0,40}")


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type, X-Widget-Token"
    response["Cache-Control"] = "no-store"
    return response


def _learner(request: HttpRequest) -> Learner | None:
    token = request.headers.get("X-Widget-Token") or request.GET.get("token", "")
    learner_id = widget_token_read(token)
    return Learner.objects.filter(pk=learner_id).first() if learner_id else None


def _refused() -> HttpResponse:
    return _cors(JsonResponse({"detail": "invalid or expired widget token"}, status=401))


def path_progress(learner: Learner) -> dict[str, Any] | None:
    """Seed 000, step 4: where the learner stands on their learning path (the path of their
    latest enrolment that has one)."""
    latest = (
        Enrollment.objects.filter(learner=learner)
        .exclude(course__learning_path="")
        .select_related("course")
        .order_by("-enrolled_at")
        .first()
    )
    if latest is None:
        return None
    path = latest.course.learning_path
    courses = list(Course.objects.filter(learning_path=path).order_by("path_position", "title"))
    done = set(
        Enrollment.objects.filter(
            learner=learner, course__in=courses, completed_at__isnull=False
        ).values_list("course_id", flat=True)
    )
    following = next((c.title for c in courses if c.pk not in done), "")
    return {
        "path": path,
        "completed": len(done),
        "total": len(courses),
        "courses": [{"title": c.title, "completed": c.pk in done} for c in courses],
        "next": following,
    }


@csrf_exempt
@require_http_methods(["GET", "OPTIONS"])
def offers(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return _cors(HttpResponse())
    learner = _learner(request)
    if learner is None:
        return _refused()
    moment = request.GET.get("moment", "")
    if not MOMENT.fullmatch(moment):
        return _cors(JsonResponse({"detail": "moment must be a journey moment's slug"}, status=400))
    # Read-only: the widget's impression POST (on mount) records the card sent and seen.
    card = offer_card(learner=learner, moment=moment)
    payload = card_payload(card, base=settings.SITE_URL) if card else None
    if payload is not None:
        base = f"{settings.SITE_URL}/w/feedback/{payload['send']}"
        payload["tracking"] = {kind: f"{base}/{kind}/" for kind in payload["tracking"]}
        payload["expires_at"] = payload["expires_at"].isoformat()
    return _cors(JsonResponse({"offer": payload, "path": path_progress(learner)}))


@csrf_exempt  # token-authenticated, no cookies: not a CSRF target
@require_http_methods(["POST", "OPTIONS"])
def feedback(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    if request.method == "OPTIONS":
        return _cors(HttpResponse())
    learner = _learner(request)
    if learner is None:
        return _refused()
    send = Send.objects.filter(pk=pk, learner=learner, channel="in_app", is_test=False).first()
    if send is None:  # another learner's send is not found either
        return _cors(JsonResponse({"detail": "not found"}, status=404))
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _cors(
            JsonResponse({"errors": [{"field": "body", "reason": "not a JSON object"}]}, status=400)
        )
    try:
        send = offer_feedback(send=send, kind=kind, reason=str(body.get("reason", "")))
    except OfferFeedbackError as exc:
        return _cors(
            JsonResponse({"errors": [{"field": exc.field, "reason": str(exc)}]}, status=400)
        )
    return _cors(JsonResponse({"send": send.pk, "status": send.status}))


def demo(request: HttpRequest) -> HttpResponse:
    """The three widget placements for a learner (``?learner=<external id>``): for those who may
    see every learner (a marketer, a superuser: ``learners.view_learner``).

    The page mints the learner's widget token, and that token reads the learner's whole widget
    — the card chosen across every campaign, the learning path across every creator's courses —
    and reports clicks and dismissals on their real sends. A course creator sees no learner
    anywhere in the admin and may not act on another creator's campaign, so a creator is
    refused like staff without a role: a 403, no token. An unknown learner is a 404, no token.
    """
    if not (request.user.is_authenticated and request.user.is_staff):
        # The admin's sign-in page (LOGIN_URL's default, /accounts/login/, is no page here).
        return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
    if not request.user.has_perm("learners.view_learner"):
        raise PermissionDenied
    external_id = request.GET.get("learner", "")
    learner = (
        Learner.objects.filter(external_id=external_id).first()
        if external_id
        # A learner with a live card to show (the page was blank for one whose cards were all
        # suppressed), else anyone with an in-app decision, else anyone.
        else Learner.objects.filter(
            sends__channel="in_app", sends__status__in=LIVE, sends__campaign__isnull=False
        )
        .order_by("-sends__created_at")
        .first()
        or Learner.objects.filter(sends__channel="in_app").first()
        or Learner.objects.first()
    )
    if external_id and learner is None:
        raise Http404("no such learner")
    context = {
        "learner": learner,
        "token": widget_token(learner) if learner else "",
        "base": settings.SITE_URL,
    }
    return render(request, "campaigns/widget_demo.html", context)
