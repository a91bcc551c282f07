"""The personalisation context every message renders with — documented, and the same shape
for a preview, a test send and a real send.

``message_context`` is a pure function of loaded objects (no queries), so a dispatcher can load
a chunk of learners in a few queries and render them all; ``preview_context`` loads everything
for one real learner, for the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone

from learners.models import Enrollment, Event, EventKind, Learner, LearnerScore, Module

# name → what it holds (the admin shows this beside the editor).
VARIABLES: dict[str, dict[str, str]] = {
    "learner": {
        "first_name": "First name (the name's first word; empty if unknown)",
        "name": "Full name",
        "email": "Email address",
        "time_zone": "IANA time zone, e.g. Europe/Berlin",
        "locale": "Locale, e.g. en",
        "external_id": "The platform's id",
    },
    "course": {
        "title": "The course the message is about",
        "progress": "Progress 0–1 (use | percent)",
        "modules_completed": "Modules completed",
        "modules_total": "Modules in the course",
        "next_module": "Title of the next module not completed (empty when done)",
        "url": "Where the course lives",
    },
    "score": {
        "lps": "Learner Progress Score 0–100",
        "band": "high, mid or low",
        "stage": "onboarding, growth, maturity, renewal or at_risk",
        "completion": "Component 0–1: module completion",
        "assessment": "Component 0–1: assessment performance",
        "community": "Component 0–1: community participation",
        "downloads": "Component 0–1: resource downloads",
        "login": "Component 0–1: login recency and frequency",
    },
    "offer": {
        "name": "Offer name",
        "product": "Target product name",
        "price": "Price to pay after any discount (use | money)",
        "list_price": "List price (use | money)",
        "discount_percent": "Discount in percent (0 if none)",
        "saving": "Amount saved (use | money)",
        "bonus": "Value-add bonus (empty if none)",
        "expires_at": "When it expires (use | local_date for the learner's zone)",
        "cta_url": "Call-to-action link (tracked)",
        "positioning": "The one line that says why it helps",
    },
    "usage": {
        "percent": "Share of the quota used, 0–1 (use | percent)",
        "used": "Units used",
        "quota": "Quota (the limit)",
        "plan": "Current plan name",
    },
    "receipt": {
        "modules_completed_30d": "Modules completed in the last 30 days",
        "assessments_30d": "Assessments submitted in the last 30 days",
        "average_score_30d": "Their average assessment score in the last 30 days (0–100)",
        "logins_30d": "Logins in the last 30 days",
    },
    "reason": {"": "Why you are seeing this (plain text, one sentence)"},
    "unsubscribe_url": {"": "One-click unsubscribe from this message's category (signed)"},
    "preferences_url": {"": "Email preferences page (signed)"},
    "company": {"name": "Sender name", "address": "Sender postal address"},
}
KNOWN = set(VARIABLES)
COMPONENTS = ("completion", "assessment", "community", "downloads", "login")


@dataclass(frozen=True)
class Receipt:
    modules_completed_30d: int = 0
    assessments_30d: int = 0
    average_score_30d: float | None = None
    logins_30d: int = 0


def _first_name(name: str) -> str:
    return name.strip().split(" ")[0] if name.strip() else ""


def message_context(
    *,
    learner: Learner,
    score: LearnerScore | None = None,
    course: dict[str, Any] | None = None,
    offer: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    receipt: Receipt | None = None,
    reason: str = "",
    unsubscribe_url: str = "",
    preferences_url: str = "",
) -> dict[str, Any]:
    """The context for one message, from loaded objects (no queries)."""
    receipt = receipt or Receipt()
    context: dict[str, Any] = {
        "learner": {
            "first_name": _first_name(learner.name),
            "name": learner.name,
            "email": learner.email,
            "time_zone": learner.time_zone,
            "locale": learner.locale,
            "external_id": learner.external_id,
        },
        "receipt": {
            "modules_completed_30d": receipt.modules_completed_30d,
            "assessments_30d": receipt.assessments_30d,
            "average_score_30d": receipt.average_score_30d,
            "logins_30d": receipt.logins_30d,
        },
        "reason": reason,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "company": {"name": settings.EXPANSION_COMPANY_NAME, "address": settings.EXPANSION_ADDRESS},
    }
    if score is not None:
        context["score"] = {
            "lps": round(score.lps),
            "band": score.band,
            "stage": score.stage,
            **{part: round(getattr(score, part), 4) for part in COMPONENTS},
        }
    if course is not None:
        context["course"] = course
    if offer is not None:
        context["offer"] = offer
    if usage is not None:
        context["usage"] = usage
    return context


def offer_context(*, offer: Any, terms: Any, cta_url: str | None = None) -> dict[str, Any]:
    """``offer`` for the context from an ``expansion.Offer`` and its ``OfferTerms``."""
    return {
        "name": offer.name,
        "product": offer.product.name,
        "price": terms.price,
        "list_price": terms.list_price,
        "discount_percent": terms.discount_percent,
        "saving": terms.saving,
        "bonus": terms.bonus,
        "expires_at": terms.expires_at,
        "cta_url": cta_url or offer.cta_url,
        "positioning": offer.positioning,
    }


def receipt_for(*, learner_id: int, now: datetime) -> Receipt:
    since = now - timedelta(days=30)
    row = Event.objects.filter(
        learner_id=learner_id, occurred_at__gte=since, occurred_at__lte=now
    ).aggregate(
        modules=Count("id", filter=Q(kind=EventKind.MODULE_COMPLETED)),
        assessments=Count("id", filter=Q(kind=EventKind.ASSESSMENT_SUBMITTED)),
        average=Avg("value", filter=Q(kind=EventKind.ASSESSMENT_SUBMITTED)),
        logins=Count("id", filter=Q(kind=EventKind.LOGIN)),
    )
    average = row["average"]
    return Receipt(
        row["modules"],
        row["assessments"],
        None if average is None else round(float(average), 1),
        row["logins"],
    )


def course_context(*, enrollment: Enrollment) -> dict[str, Any]:
    modules = list(Module.objects.filter(course_id=enrollment.course_id).order_by("position"))
    done_ids = set(
        Event.objects.filter(
            learner_id=enrollment.learner_id,
            course_id=enrollment.course_id,
            kind=EventKind.MODULE_COMPLETED,
        ).values_list("module_id", flat=True)
    )
    following = next((m.title for m in modules if m.pk not in done_ids), "")
    return {
        "title": enrollment.course.title,
        "progress": float(enrollment.progress) / 100,
        "modules_completed": len(done_ids & {m.pk for m in modules}),
        "modules_total": len(modules),
        "next_module": following,
        "url": "",
    }


@dataclass(frozen=True)
class ContextRequest:
    """What one message is about: the learner (loaded), the course and offer it concerns (the
    offer with its product loaded) and the reason it records."""

    learner: Learner
    course_id: int | None = None
    offer: Any = None
    reason: str = ""


def contexts_build(
    *, requests: list[ContextRequest], now: datetime, policy: Any = None
) -> list[dict[str, Any]]:
    """The context of each request, in order (without links: delivery adds those).

    TODO(context builder): set-based — a fixed number of queries for any number of requests.
    """
    from expansion.pricing import offer_terms

    out = []
    for request in requests:
        learner = request.learner
        offer = None
        if request.offer is not None:
            offer = offer_context(
                offer=request.offer,
                terms=offer_terms(
                    offer=request.offer, learner_id=learner.pk, now=now, policy=policy
                ),
            )
        course = None
        if request.course_id is not None:
            enrollment = (
                Enrollment.objects.filter(learner=learner, course_id=request.course_id)
                .select_related("course")
                .first()
            )
            course = course_context(enrollment=enrollment) if enrollment else None
        out.append(
            message_context(
                learner=learner,
                score=LearnerScore.objects.filter(learner=learner).first(),
                course=course,
                offer=offer,
                reason=request.reason,
                receipt=receipt_for(learner_id=learner.pk, now=now),
            )
        )
    return out


def preview_context(*, learner: Learner, now: datetime | None = None) -> dict[str, Any]:
    """Everything for one real learner: their latest enrollment, scores, the first active
    offer priced for them, their value receipt. For previews and test sends."""
    from expansion.models import Offer
    from expansion.pricing import offer_terms

    now = now or timezone.now()
    enrollment = (
        Enrollment.objects.filter(learner=learner)
        .select_related("course")
        .order_by("-enrolled_at")
        .first()
    )
    offer = Offer.objects.filter(is_active=True).select_related("product").first()
    sub = learner.subscriptions.filter(quota_limit__gt=0).select_related("plan").first()
    usage = None
    if sub is not None and sub.quota_limit:
        usage = {
            "percent": round((sub.quota_used or 0) / sub.quota_limit, 4),
            "used": sub.quota_used or 0,
            "quota": sub.quota_limit,
            "plan": sub.plan.name,
        }
    return message_context(
        learner=learner,
        score=LearnerScore.objects.filter(learner=learner).first(),
        course=course_context(enrollment=enrollment) if enrollment else None,
        offer=offer_context(offer=offer, terms=offer_terms(offer=offer, learner_id=learner.pk))
        if offer
        else None,
        usage=usage,
        receipt=receipt_for(learner_id=learner.pk, now=now),
        reason="A preview: the reason a real send records goes here.",
        unsubscribe_url="https://example.invalid/unsubscribe",
        preferences_url="https://example.invalid/preferences",
    )
