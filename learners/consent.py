"""Consent: who may be sent what. Marketing needs the learner's opt-in and no opt-out of the
message's category; nothing at all goes to a suppressed (bounced or complained) address.

Every change is kept as a ``ConsentChange``; repeating a change (a second one-click
unsubscribe, a preference form saved unchanged) writes nothing.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .models import (
    MARKETING_CATEGORIES,
    CategoryOptOut,
    ConsentChange,
    EmailSuppression,
    Learner,
)
from .models import reachable_q as reachable_q  # defined beside LearnerQuerySet.reachable


def consent_blocker(learner: Learner, category: str, address: str = "") -> str:
    """Why ``learner`` may not be sent a message of ``category`` now; empty if they may.

    ``address``: the address the message goes to, if not the learner's own."""
    return consent_blockers([(learner, category, address)])[0]


def consent_blockers(items: list[tuple[Learner, str, str]]) -> list[str]:
    """``consent_blocker`` for many (learner, category, address) at once, in two queries
    whatever their number (the dispatcher checks a whole chunk this way)."""
    addresses = {(address or learner.email).strip().lower() for learner, _, address in items} | {
        learner.email.strip().lower() for learner, _, _ in items if learner.email
    }
    suppressed = set(
        EmailSuppression.objects.filter(email__in=addresses).values_list("email", flat=True)
    )
    marketing = {learner.pk for learner, category, _ in items if category in MARKETING_CATEGORIES}
    opted_out = set(
        CategoryOptOut.objects.filter(learner_id__in=marketing).values_list(
            "learner_id", "category"
        )
    )
    reasons = []
    for learner, category, address in items:
        to = (address or learner.email).strip().lower()
        if not learner.email:
            reason = "no email address"
        elif to in suppressed or learner.email.strip().lower() in suppressed:
            reason = "address suppressed (bounce or complaint)"
        elif category not in MARKETING_CATEGORIES:
            reason = ""
        elif not learner.marketing_opt_in:
            reason = "no marketing consent"
        elif learner.unsubscribed_at is not None:
            reason = "unsubscribed from all marketing"
        elif (learner.pk, category) in opted_out:
            reason = f"opted out of {category}"
        else:
            reason = ""
        reasons.append(reason)
    return reasons


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
