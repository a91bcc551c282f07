"""Good-better-best ladders, bundles and offer incentives: the checks a marketer's pricing must
pass before it is saved, and the figures the admin shows beside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import F
from django.utils import timezone

from .models import CommerceSettings, Incentive, Offer, OrderLine

CENT = Decimal("0.01")


@dataclass(frozen=True)
class TierDraft:
    """A tier as entered (before it is saved): what the ladder checks read."""

    position: int
    name: str
    price: Decimal
    features: tuple[str, ...]


@dataclass
class LadderCheck:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def features_clean(value: Any) -> tuple[str, ...]:
    """Features from a list or from text with one per line; blank lines dropped, order kept."""
    items = value.splitlines() if isinstance(value, str) else list(value or [])
    seen: dict[str, None] = {}
    for item in items:
        text = str(item).strip()
        if text:
            seen.setdefault(text, None)
    return tuple(seen)


def ladder_check(
    *, tiers: list[TierDraft], intended_winner: int, anchor_position: int
) -> LadderCheck:
    """Refuse a ladder a customer could not rationally choose from; warn on a weak middle.

    Errors: not exactly tiers 1, 2 and 3; a price that does not rise with the position; a
    higher tier that drops a feature of a lower one or adds none (same features for more); any
    tier dominated by another (costs more with no extra feature: a fake decoy).
    Warnings: the intended winner is not the middle; the anchor is not the top tier.
    """
    result = LadderCheck()
    ordered = sorted(tiers, key=lambda t: t.position)
    if [t.position for t in ordered] != [1, 2, 3]:
        result.errors.append("A ladder has exactly three tiers: 1 (good), 2 (better), 3 (best).")
        return result
    for tier in ordered:
        if not tier.features:
            result.errors.append(f"{tier.name}: list at least one feature.")
    for lower, higher in zip(ordered, ordered[1:], strict=False):
        if higher.price <= lower.price:
            result.errors.append(
                f"{higher.name} ({higher.price}) must cost more than {lower.name} "
                f"({lower.price}): prices rise with features."
            )
        missing = [f for f in lower.features if f not in higher.features]
        if missing:
            result.errors.append(
                f"{higher.name} drops {', '.join(repr(f) for f in missing)} that {lower.name} "
                "has: each tier includes everything below it."
            )
        elif set(higher.features) == set(lower.features):
            result.errors.append(
                f"{higher.name} has the same features as {lower.name} for more: a fake decoy."
            )
    for tier in ordered:
        for other in ordered:
            if other is tier or not tier.features:
                continue
            dominated = (
                other.price <= tier.price
                and set(other.features) >= set(tier.features)
                and (other.price < tier.price or set(other.features) > set(tier.features))
            )
            if dominated:
                message = (
                    f"{tier.name} is dominated by {other.name} (as much or more for less): "
                    "nobody could rationally buy it."
                )
                if message not in result.errors:
                    result.errors.append(message)
    if intended_winner != 2:
        result.warnings.append(
            f"The intended winner is tier {intended_winner}, not the middle: good-better-best "
            "works by making the middle the sensible choice."
        )
    if anchor_position != 3:
        result.warnings.append(
            "The anchor is not the top tier: leading with the highest tier is what makes the "
            "middle look sensible."
        )
    return result


@dataclass(frozen=True)
class BundleLine:
    name: str
    quantity: int
    price: Decimal
    unit_cost: Decimal | None


@dataclass(frozen=True)
class BundleFigures:
    sum_of_parts: Decimal
    saving: Decimal
    saving_percent: Decimal
    cost: Decimal | None
    margin_percent: Decimal | None
    below_floor: bool
    unknown_costs: tuple[str, ...]


def bundle_figures(
    *, lines: list[BundleLine], price: Decimal, margin_floor: Decimal
) -> BundleFigures:
    """Sum of parts, displayed saving, blended gross margin at the bundle price.

    The margin is unknown (None) while any item has no unit cost; a bundle cannot be checked
    against its floor without it, so the admin refuses to save one that is unknown.
    """
    parts = sum((line.price * line.quantity for line in lines), Decimal("0"))
    saving = parts - price
    saving_percent = (saving * 100 / parts).quantize(CENT, ROUND_HALF_UP) if parts else Decimal(0)
    unknown = tuple(line.name for line in lines if line.unit_cost is None)
    cost: Decimal | None = None
    margin: Decimal | None = None
    if not unknown and lines:
        cost = sum((line.unit_cost * line.quantity for line in lines if line.unit_cost), Decimal(0))
        margin = ((price - cost) * 100 / price).quantize(CENT, ROUND_HALF_UP) if price else None
    return BundleFigures(
        sum_of_parts=parts.quantize(CENT),
        saving=saving.quantize(CENT),
        saving_percent=saving_percent,
        cost=None if cost is None else cost.quantize(CENT),
        margin_percent=margin,
        below_floor=margin is not None and margin < margin_floor,
        unknown_costs=unknown,
    )


def offer_check(
    *,
    incentive: str,
    discount_percent: int | None,
    bonus: str,
    policy: CommerceSettings,
) -> list[str]:
    """Errors for an offer's incentive: a discount needs a percent within the ceiling."""
    errors = []
    if incentive == Incentive.DISCOUNT:
        if not discount_percent:
            errors.append("A percentage discount needs its percent.")
        elif discount_percent > policy.max_discount_percent:
            errors.append(
                f"{discount_percent}% is above the {policy.max_discount_percent}% ceiling "
                "(Commerce settings): habitual discounting trains customers to wait."
            )
    elif discount_percent:
        errors.append("Only a percentage discount takes a percent.")
    if incentive == Incentive.BONUS and not bonus.strip():
        errors.append("Name the value-add bonus.")
    return errors


@dataclass(frozen=True)
class OfferTerms:
    """What a learner is actually offered at a moment: the price, the incentive, the expiry."""

    price: Decimal
    list_price: Decimal
    discount_percent: int
    saving: Decimal
    bonus: str
    expires_at: datetime
    guard_applied: bool


def discount_guarded(
    *, learner_ids: Iterable[int], now: datetime, policy: CommerceSettings
) -> set[int]:
    """Those of ``learner_ids`` the habitual-discounting guard holds at ``now``: they bought
    anything below its list price within ``discount_cooldown_days``. One query for any number
    of learners (an index probe per learner on the order's learner)."""
    ids = set(learner_ids)
    if not ids:
        return set()
    since = now - timedelta(days=policy.discount_cooldown_days)
    return set(
        OrderLine.objects.filter(
            order__learner_id__in=ids,
            order__placed_at__gte=since,
            order__placed_at__lte=now,
            unit_price__lt=F("product__price"),
        )
        .order_by()  # not the lines' default order: it would join the order's time into DISTINCT
        .values_list("order__learner_id", flat=True)
        .distinct()
    )


def offer_terms(
    *,
    offer: Offer,
    learner_id: int,
    now: datetime | None = None,
    policy: CommerceSettings | None = None,
    guard: bool | None = None,
) -> OfferTerms:
    """The offer's terms for one learner, with the habitual-discounting guard applied.

    A learner who bought anything below its list price within ``discount_cooldown_days``
    gets the offer's bonus (or full price if it has none) instead of another discount.
    ``policy``: the commerce settings, when the caller prices many offers at once.
    ``guard``: whether the guard holds this learner, when the caller already knows
    (``discount_guarded`` for many learners at once); None looks it up (one query, and only
    for a discount).
    """
    now = now or timezone.now()
    list_price = offer.product.price
    percent = (offer.discount_percent or 0) if offer.incentive == Incentive.DISCOUNT else 0
    held = False
    if percent:
        if guard is None:
            policy = policy or CommerceSettings.load()
            guard = learner_id in discount_guarded(learner_ids=[learner_id], now=now, policy=policy)
        held = guard
        if held:
            percent = 0
    price = (list_price * (100 - percent) / 100).quantize(CENT, ROUND_HALF_UP)
    bonus = offer.bonus if (offer.incentive == Incentive.BONUS or held) else ""
    return OfferTerms(
        price=price,
        list_price=list_price,
        discount_percent=percent,
        saving=list_price - price,
        bonus=bonus,
        expires_at=now + timedelta(hours=offer.valid_hours),
        guard_applied=held,
    )


def offers_terms(
    *,
    pairs: Sequence[tuple[Offer, int]],
    now: datetime,
    policy: CommerceSettings | None = None,
) -> list[OfferTerms]:
    """``offer_terms`` for each (offer, learner id), in order: at most two queries for any
    number of pairs (the commerce settings unless given, and the guard when any offer is a
    discount)."""
    discounted = [
        learner_id
        for offer, learner_id in pairs
        if offer.incentive == Incentive.DISCOUNT and offer.discount_percent
    ]
    held: set[int] = set()
    if discounted:
        policy = policy or CommerceSettings.load()
        held = discount_guarded(learner_ids=discounted, now=now, policy=policy)
    return [
        offer_terms(
            offer=offer, learner_id=learner_id, now=now, policy=policy, guard=learner_id in held
        )
        for offer, learner_id in pairs
    ]
