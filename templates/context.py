"""The personalisation context every message renders with — documented, and built by one
function for a preview, a test send and a real send ("preview is send").

``contexts_build`` loads what a list of messages needs in a fixed number of queries, whatever
the number of messages (scores, courses and their modules, the modules each learner completed,
quota usage, the 30-day value receipt, offer terms), and shapes each with ``message_context``,
a pure function of loaded objects. ``preview_context`` is ``contexts_build`` for one learner,
with the example links an admin preview shows.

One module just past 400 lines on purpose: ``VARIABLES`` documents exactly what
``message_context`` fills and the loaders behind ``contexts_build`` exist only for it, so
the documented variables and the code that fills them are read and changed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, OuterRef, Q, Subquery
from django.utils import timezone

from expansion.commerce.models import Offer, Subscription
from expansion.commerce.pricing import offers_terms
from learners.models import (
    Course,
    Enrollment,
    Event,
    EventKind,
    Learner,
    LearnerScore,
    Module,
)

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
        "url": "Where the course lives on the platform (empty if not synced)",
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


@dataclass(frozen=True)
class ContextRequest:
    """What one message is about: the learner (loaded), the course and offer it concerns (the
    offer with its product loaded) and the reason it records. Without a course, the message is
    about the learner's latest enrollment (if any)."""

    learner: Learner
    course_id: int | None = None
    offer: Any = None
    reason: str = ""


PREVIEW_REASON = "A preview: the reason a real send records goes here."
PREVIEW_LINKS = {
    "unsubscribe_url": "https://example.invalid/unsubscribe",
    "preferences_url": "https://example.invalid/preferences",
}
# Subscription statuses whose quota is current (campaigns.triggers.LIVE: the usage trigger).
LIVE_SUBSCRIPTIONS = ("active", "trialing", "past_due")


def contexts_build(
    *, requests: list[ContextRequest], now: datetime, policy: Any = None
) -> list[dict[str, Any]]:
    """The context of each request, in order (without links: delivery adds those).

    Set-based: at most ten queries for any number of requests — scores (none when every
    learner came with ``select_related("score")``), the latest enrollments of the learners
    without a course, the enrollments of the (learner, course) pairs, courses nobody is
    enrolled in, their modules, the modules completed, quota usage, the value receipts (one
    GROUP BY), and the commerce settings and habitual-discount guard for discount offers.
    ``policy``: the commerce settings, loaded once by a caller that builds many chunks.
    """
    if not requests:
        return []
    learners = {request.learner.pk: request.learner for request in requests}
    scores = _scores(list(learners.values()))
    courses = _courses(requests)
    usage = _usage(list(learners.values()))
    receipts = _receipts(learner_ids=set(learners), now=now)
    priced = [index for index, request in enumerate(requests) if request.offer is not None]
    terms = offers_terms(
        pairs=[(requests[index].offer, requests[index].learner.pk) for index in priced],
        now=now,
        policy=policy,
    )
    offers = {
        index: offer_context(offer=requests[index].offer, terms=found)
        for index, found in zip(priced, terms, strict=True)
    }
    return [
        message_context(
            learner=request.learner,
            score=scores.get(request.learner.pk),
            course=courses[index],
            offer=offers.get(index),
            usage=usage.get(request.learner.pk),
            receipt=receipts.get(request.learner.pk),
            reason=request.reason,
        )
        for index, request in enumerate(requests)
    ]


def _scores(learners: list[Learner]) -> dict[int, LearnerScore]:
    """Each learner's score: from ``select_related`` when every learner has it, else one query."""
    descriptor = Learner.score  # type: ignore[attr-defined]
    if all(descriptor.is_cached(learner) for learner in learners):
        found = {learner.pk: getattr(learner, "score", None) for learner in learners}
        return {pk: score for pk, score in found.items() if score is not None}
    rows = LearnerScore.objects.filter(learner_id__in=[learner.pk for learner in learners])
    return {score.learner_id: score for score in rows}


def _courses(requests: list[ContextRequest]) -> list[dict[str, Any] | None]:
    """``course`` for each request (None: no course and no enrollment), in order.

    A request's course is its own, else its learner's latest enrollment (preview's choice, so
    preview and send agree). Progress comes from the enrollment (0 if the learner is not
    enrolled in a course a message is about); modules completed and the next module from the
    learner's module_completed events in that course.
    """
    without = {r.learner.pk for r in requests if r.course_id is None}
    latest: dict[int, Enrollment] = {}
    if without:
        # The newest enrollment per learner, in one query (a correlated subquery per learner).
        newest = (
            Enrollment.objects.filter(learner_id=OuterRef("learner_id"))
            .order_by("-enrolled_at", "-id")
            .values("pk")[:1]
        )
        for enrollment in Enrollment.objects.filter(
            learner_id__in=without, pk=Subquery(newest)
        ).select_related("course"):
            latest[enrollment.learner_id] = enrollment
    wanted = {(r.learner.pk, r.course_id) for r in requests if r.course_id is not None}
    enrolled: dict[tuple[int, int], Enrollment] = {}
    if wanted:
        # The learners' enrollments in any of the courses, the pairs kept here: as an OR of
        # one Q per pair, building and compiling the query took 0.7 ms a request
        # (bench/delivery.py, a chunk of 200), more than the rest of the context.
        for enrollment in Enrollment.objects.filter(
            learner_id__in={pair[0] for pair in wanted},
            course_id__in={pair[1] for pair in wanted},
        ).select_related("course"):
            key = (enrollment.learner_id, enrollment.course_id)
            if key in wanted:
                enrolled[key] = enrollment
    # (learner, course) → its enrollment, or None for a course the learner is not enrolled in.
    resolved: list[tuple[int, int, Enrollment | None] | None] = []
    for request in requests:
        learner_id = request.learner.pk
        if request.course_id is None:
            found = latest.get(learner_id)
            resolved.append((learner_id, found.course_id, found) if found else None)
        else:
            key = (learner_id, request.course_id)
            resolved.append((learner_id, request.course_id, enrolled.get(key)))
    titles = {e.course_id: e.course.title for e in [*latest.values(), *enrolled.values()]}
    urls = {e.course_id: e.course.url for e in [*latest.values(), *enrolled.values()]}
    unknown = {item[1] for item in resolved if item and item[1] not in titles}
    if unknown:
        for pk, title, url in Course.objects.filter(pk__in=unknown).values_list(
            "id", "title", "url"
        ):
            titles[pk], urls[pk] = title, url
    course_ids = {item[1] for item in resolved if item and item[1] in titles}
    if not course_ids:
        return [None] * len(requests)
    modules: dict[int, list[tuple[int, str]]] = {}
    for module_id, course_id, title in (
        Module.objects.filter(course_id__in=course_ids)
        .order_by("course_id", "position")
        .values_list("id", "course_id", "title")
    ):
        modules.setdefault(course_id, []).append((module_id, title))
    learner_ids = {item[0] for item in resolved if item and item[1] in titles}
    done: dict[tuple[int, int], set[int]] = {}
    # Read from event_learner_kind_time_idx alone (course and module are included columns).
    for learner_id, course_id, module_id in (
        Event.objects.filter(
            learner_id__in=learner_ids,
            kind=EventKind.MODULE_COMPLETED,
            course_id__in=course_ids,
            module_id__isnull=False,
        )
        .order_by()
        .values_list("learner_id", "course_id", "module_id")
        .distinct()
    ):
        done.setdefault((learner_id, course_id), set()).add(module_id)
    out: list[dict[str, Any] | None] = []
    for item in resolved:
        if item is None or item[1] not in titles:
            out.append(None)
            continue
        learner_id, course_id, joined = item
        course_modules = modules.get(course_id, [])
        completed = done.get((learner_id, course_id), set())
        out.append(
            {
                "title": titles[course_id],
                "progress": float(joined.progress) / 100 if joined else 0.0,
                "modules_completed": sum(1 for pk, _ in course_modules if pk in completed),
                "modules_total": len(course_modules),
                "next_module": next((t for pk, t in course_modules if pk not in completed), ""),
                "url": urls.get(course_id, ""),
            }
        )
    return out


def _usage(learners: list[Learner]) -> dict[int, dict[str, Any]]:
    """``usage`` per learner, in one query: the quota of the subscription they hold, else of
    their account's (a team plan's members share its quota, as the usage trigger does); a
    live subscription before an ended one, then the latest started."""
    learner_ids = {learner.pk for learner in learners}
    account_ids = {learner.account_id for learner in learners if learner.account_id}
    holders = Q(learner_id__in=learner_ids)
    if account_ids:
        holders |= Q(account_id__in=account_ids)
    best: dict[tuple[str, int | None], Any] = {}
    for sub in Subscription.objects.filter(holders, quota_limit__gt=0).select_related("plan"):
        key = ("learner", sub.learner_id) if sub.learner_id else ("account", sub.account_id)
        rank = (sub.status in LIVE_SUBSCRIPTIONS, sub.started_at, sub.pk)
        current = best.get(key)
        if current is None or rank > current[0]:
            best[key] = (rank, sub)
    out = {}
    for learner in learners:
        chosen = best.get(("learner", learner.pk)) or best.get(("account", learner.account_id))
        if chosen is None:
            continue
        sub = chosen[1]
        used = sub.quota_used or 0
        out[learner.pk] = {
            "percent": round(used / sub.quota_limit, 4),
            "used": used,
            "quota": sub.quota_limit,
            "plan": sub.plan.name,
        }
    return out


def _receipts(*, learner_ids: set[int], now: datetime) -> dict[int, Receipt]:
    """The 30-day value receipt of each learner with activity in the window (others get the
    empty ``Receipt()``): one GROUP BY over their events."""
    since = now - timedelta(days=30)
    rows = (
        Event.objects.filter(
            learner_id__in=learner_ids,
            kind__in=[EventKind.MODULE_COMPLETED, EventKind.ASSESSMENT_SUBMITTED, EventKind.LOGIN],
            occurred_at__gte=since,
            occurred_at__lte=now,
        )
        .order_by()
        .values("learner_id")
        .annotate(
            modules=Count("id", filter=Q(kind=EventKind.MODULE_COMPLETED)),
            assessments=Count("id", filter=Q(kind=EventKind.ASSESSMENT_SUBMITTED)),
            average=Avg("value", filter=Q(kind=EventKind.ASSESSMENT_SUBMITTED)),
            logins=Count("id", filter=Q(kind=EventKind.LOGIN)),
        )
    )
    return {
        row["learner_id"]: Receipt(
            row["modules"],
            row["assessments"],
            None if row["average"] is None else round(float(row["average"]), 1),
            row["logins"],
        )
        for row in rows
    }


def preview_context(
    *,
    learner: Learner,
    now: datetime | None = None,
    course_id: int | None = None,
    offer: Any = None,
    reason: str = PREVIEW_REASON,
    any_offer: bool = True,
) -> dict[str, Any]:
    """What a send to this real learner would render with (``contexts_build``: one code path
    for previews, test sends and real sends), about ``course_id`` (default: their latest
    enrollment) and ``offer`` (default: the first active offer, by name, unless
    ``any_offer`` is False: a campaign's preview shows its own offer or none), with example
    links (a test send replaces them with its own signed ones)."""
    now = now or timezone.now()
    if offer is None and any_offer:
        offer = Offer.objects.filter(is_active=True).select_related("product").first()
    request = ContextRequest(learner=learner, course_id=course_id, offer=offer, reason=reason)
    (context,) = contexts_build(requests=[request], now=now)
    return {**context, **PREVIEW_LINKS}
