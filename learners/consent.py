"""Consent: who may be sent what. Marketing needs the learner's opt-in and no opt-out of the
message's category; nothing at all goes to a suppressed (bounced or complained) address.

Every change is kept as a ``ConsentChange``; repeating a change (a second one-click
unsubscribe, a preference form saved unchanged) writes nothing.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.utils import timezone

from .models import (
    MARKETING_CATEGORIES,
    CategoryOptOut,
    ConsentChange,
    EmailSuppression,
    Learner,
)


def consent_blocker(learner: Learner, category: str) -> str:
    """Why ``learner`` may not be sent a message of ``category`` now; empty if they may."""
    if not learner.email:
        return "no email address"
    if EmailSuppression.objects.filter(email=learner.email.strip().lower()).exists():
        return "address suppressed (bounce or complaint)"
    if category not in MARKETING_CATEGORIES:
        return ""
    if not learner.marketing_opt_in:
        return "no marketing consent"
    if learner.unsubscribed_at is not None:
        return "unsubscribed from all marketing"
    if CategoryOptOut.objects.filter(learner=learner, category=category).exists():
        return f"opted out of {category}"
    return ""


def reachable_q(category: str = "") -> Q:
    """Learners a message of ``category`` may reach, as one condition for a queryset of
    learners ('' = any marketing category: opted in, not unsubscribed from everything)."""
    condition: Q = ~Q(email="") & ~Q(
        Exists(EmailSuppression.objects.filter(email=Lower(OuterRef("email"))))
    )
    if category and category not in MARKETING_CATEGORIES:
        return condition
    condition &= Q(marketing_opt_in=True, unsubscribed_at__isnull=True)
    if category:
        condition &= ~Q(
            Exists(CategoryOptOut.objects.filter(learner=OuterRef("pk"), category=category))
        )
    return condition


def opted_out(learner: Learner) -> set[str]:
    return set(learner.opt_outs.values_list("category", flat=True))


@transaction.atomic
def consent_unsubscribe(
    learner: Learner, *, category: str = "", source: str, send_id: int | None = None
) -> bool:
    """Opt ``learner`` out of ``category`` ('' = all marketing). True if anything changed."""
    learner = Learner.objects.select_for_update().get(pk=learner.pk)
    now = timezone.now()
    if not category:
        if learner.unsubscribed_at is not None:
            return False
        Learner.objects.filter(pk=learner.pk).update(unsubscribed_at=now, updated_at=now)
    else:
        _, created = CategoryOptOut.objects.get_or_create(learner=learner, category=category)
        if not created:
            return False
    ConsentChange.objects.create(
        learner=learner, category=category, subscribed=False, source=source, send_id=send_id
    )
    return True


@transaction.atomic
def consent_preferences_save(
    learner: Learner, *, wanted: set[str], source: str, send_id: int | None = None
) -> int:
    """Make ``learner``'s marketing subscriptions exactly ``wanted``; returns the changes.

    Choosing at least one category is consent: it opts the learner in (and back in after an
    unsubscribe from everything). Choosing none opts out of each category; "unsubscribe from
    everything" is ``consent_unsubscribe`` without a category.
    """
    learner = Learner.objects.select_for_update().get(pk=learner.pk)
    wanted = {c for c in wanted if c in MARKETING_CATEGORIES}
    now = timezone.now()
    changes: list[tuple[str, bool]] = []
    current_out = opted_out(learner)
    for category in MARKETING_CATEGORIES:
        if category in wanted and category in current_out:
            CategoryOptOut.objects.filter(learner=learner, category=category).delete()
            changes.append((category, True))
        elif category not in wanted and category not in current_out:
            CategoryOptOut.objects.create(learner=learner, category=category)
            changes.append((category, False))
    if wanted and (learner.unsubscribed_at is not None or not learner.marketing_opt_in):
        Learner.objects.filter(pk=learner.pk).update(
            unsubscribed_at=None, marketing_opt_in=True, updated_at=now
        )
        changes.append(("", True))
    ConsentChange.objects.bulk_create(
        ConsentChange(
            learner=learner,
            category=category,
            subscribed=subscribed,
            source=source,
            send_id=send_id,
            changed_at=now,
        )
        for category, subscribed in changes
    )
    return len(changes)
