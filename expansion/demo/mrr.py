"""The demo's MRR movements: upgrades and seat purchases, written to the MRR ledger."""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal

from expansion.commerce.models import (
    ExpansionType,
    Product,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)


def demo_mrr_moves(
    *, rng: random.Random, now: datetime, subscriptions: list[Subscription], plans: list[Product]
) -> None:
    """Some Basic members upgraded to Pro and some teams bought seats, with their ledger."""
    changes = []
    for sub in subscriptions:
        if sub.status != SubscriptionStatus.ACTIVE:
            continue
        holder = {"learner_id": sub.learner_id, "account_id": sub.account_id}
        if sub.plan_id == plans[0].pk and rng.random() < 0.3:
            moved = sub.started_at + (now - sub.started_at) * rng.uniform(0.2, 0.9)
            changes += [
                SubscriptionChange(
                    subscription=sub,
                    effective_at=sub.started_at,
                    mrr_before=0,
                    mrr_after=plans[0].price,
                    **holder,
                ),
                SubscriptionChange(
                    subscription=sub,
                    effective_at=moved,
                    mrr_before=plans[0].price,
                    mrr_after=plans[1].price,
                    expansion_type=ExpansionType.UPSELL,
                    **holder,
                ),
            ]
            sub.plan, sub.mrr = plans[1], plans[1].price
        elif sub.account_id and rng.random() < 0.4:
            moved = sub.started_at + (now - sub.started_at) * rng.uniform(0.3, 0.95)
            more = sub.mrr + Decimal("95.00")
            changes += [
                SubscriptionChange(
                    subscription=sub,
                    effective_at=sub.started_at,
                    mrr_before=0,
                    mrr_after=sub.mrr,
                    **holder,
                ),
                SubscriptionChange(
                    subscription=sub,
                    effective_at=moved,
                    mrr_before=sub.mrr,
                    mrr_after=more,
                    expansion_type=ExpansionType.SEAT_EXPANSION,
                    **holder,
                ),
            ]
            sub.mrr = more
            sub.seats_limit = (sub.seats_limit or 0) + 5
    Subscription.objects.bulk_update(
        [c.subscription for c in changes if c.expansion_type], ["plan", "mrr", "seats_limit"]
    )
    SubscriptionChange.objects.bulk_create(changes, batch_size=2000)
