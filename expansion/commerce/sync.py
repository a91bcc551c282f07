"""Bulk upserts of products, orders (with lines) and subscriptions from a billing system.

Same contract as learners.sync: validate item by item, write the valid items set-based in one
transaction, return counts and per-item errors; replaying a batch changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from expansion.core.api.batch import (
    FieldError,
    Spec,
    aware_datetime,
    boolean,
    choice,
    currency,
    identifier,
    integer,
    item_schema,
    money,
    optional,
    past_datetime,
    refuse_moves_past_stored,
    resolve_references,
    string,
    upsert,
    validate_items,
)
from learners.dirty import learners_mark_dirty, learners_mark_dirty_query, scoring_kick_on_commit
from learners.models import Course, Learner
from learners.sync import SyncResult, accounts_ensure, external_ids

from .models import (
    ExpansionType,
    Order,
    OrderLine,
    Product,
    ProductKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)

PRODUCT_SPECS = {
    "sku": Spec(identifier(max_length=100), required=True),
    "name": Spec(string(), required=True),
    "kind": Spec(choice(ProductKind.values), required=True),
    "price": Spec(money(), required=True),
    "currency": Spec(currency),
    "unit_cost": Spec(optional(money())),
    "course": Spec(optional(identifier())),
    "is_active": Spec(boolean),
}


def products_upsert(*, items: list[Any]) -> SyncResult:
    batch = validate_items(items, PRODUCT_SPECS, unique="sku")
    resolve_references(
        batch,
        field_name="course",
        lookup=lambda ext: external_ids(Course, ext),
        target="course_id",
        what="course",
    )
    with transaction.atomic():
        counts = upsert(Product, [row for _, row in batch.rows], unique_fields=("sku",))
    return SyncResult(counts.created, counts.updated, batch.errors)


LINE_SPECS = {
    "external_id": Spec(identifier(), required=True),
    "sku": Spec(identifier(max_length=100), required=True),
    "quantity": Spec(integer(minimum=1, maximum=1_000_000)),
    "unit_price": Spec(money(), required=True),
    "refunded_amount": Spec(money()),
}


def _lines(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise FieldError("must be a non-empty array of order lines")
    nested = validate_items(value, LINE_SPECS, unique="external_id")
    if nested.errors:
        first = nested.errors[0]
        inner = f".{first['field']}" if first["field"] else ""
        raise FieldError(first["reason"], field=f"lines[{first['index']}]{inner}")
    lines = []
    for index, line in nested.rows:
        line.setdefault("quantity", 1)
        line.setdefault("refunded_amount", Decimal("0.00"))
        if line["refunded_amount"] > line["unit_price"] * line["quantity"]:
            raise FieldError(
                "exceeds quantity × unit_price", field=f"lines[{index}].refunded_amount"
            )
        lines.append(line)
    return lines


_lines.schema = {  # type: ignore[attr-defined]
    "type": "array",
    "minItems": 1,
    "items": item_schema(LINE_SPECS),
    "description": "The order's lines (replace the stored ones).",
}


# Sent after the commit of an order sync with ``order_ids``: campaigns attributes them to the
# sends that led to them (commerce cannot import campaigns).
orders_synced = Signal()


ORDER_SPECS = {
    "external_id": Spec(identifier(), required=True),
    "learner": Spec(identifier(), required=True),
    "placed_at": Spec(past_datetime, required=True),
    "currency": Spec(currency),
    "lines": Spec(_lines, required=True),
}


def orders_upsert(*, items: list[Any]) -> SyncResult:
    """Upsert orders; each order's lines are replaced by the lines sent."""
    batch = validate_items(items, ORDER_SPECS, unique="external_id")
    resolve_references(
        batch,
        field_name="learner",
        lookup=lambda ext: external_ids(Learner, ext),
        target="learner_id",
        what="learner",
    )
    skus = {line["sku"] for _, row in batch.rows for line in row["lines"]}
    products = dict(Product.objects.filter(sku__in=skus).values_list("sku", "id"))
    for index, row in batch.rows:
        for position, line in enumerate(row["lines"]):
            if line["sku"] not in products:
                batch.fail(index, f"lines[{position}].sku", f"unknown product {line['sku'][:64]!r}")
                break
    batch.drop_failed()
    lines_by_order = {row["external_id"]: row.pop("lines") for _, row in batch.rows}
    with transaction.atomic():
        # An order moved to another learner changes the previous one's totals too.
        learners_mark_dirty_query(
            Order.objects.filter(external_id__in=list(lines_by_order)).values("learner_id")
        )
        counts = upsert(Order, [row for _, row in batch.rows], unique_fields=("external_id",))
        order_ids = external_ids(Order, lines_by_order)
        OrderLine.objects.filter(order_id__in=order_ids.values()).delete()
        OrderLine.objects.bulk_create(
            [
                OrderLine(
                    order_id=order_ids[ext],
                    external_id=line["external_id"],
                    product_id=products[line["sku"]],
                    quantity=line["quantity"],
                    unit_price=line["unit_price"],
                    refunded_amount=line["refunded_amount"],
                )
                for ext, lines in lines_by_order.items()
                for line in lines
            ],
            batch_size=1000,
        )
        # Orders feed RFM, the refund flag and "owns product".
        learners_mark_dirty(row["learner_id"] for _, row in batch.rows)
        scoring_kick_on_commit()
        synced = sorted(order_ids.values())
        transaction.on_commit(lambda: orders_synced.send(sender=None, order_ids=synced))
    return SyncResult(counts.created, counts.updated, batch.errors)


SUBSCRIPTION_SPECS = {
    "external_id": Spec(identifier(), required=True),
    "learner": Spec(identifier()),
    "account": Spec(identifier()),
    "plan": Spec(identifier(max_length=100), required=True),
    "mrr": Spec(money(), required=True),
    "status": Spec(choice(SubscriptionStatus.values), required=True),
    "started_at": Spec(past_datetime, required=True),
    "renews_at": Spec(optional(aware_datetime)),
    "cancelled_at": Spec(optional(aware_datetime)),
    "seats_used": Spec(optional(integer(maximum=10_000_000))),
    "seats_limit": Spec(optional(integer(maximum=10_000_000))),
    "quota_used": Spec(optional(integer())),
    "quota_limit": Spec(optional(integer())),
    # Not stored on the subscription: when an MRR change in this item took effect.
    "changed_at": Spec(past_datetime),
}

CONTRIBUTING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
_STATE = (
    "id",
    "external_id",
    "status",
    "mrr",
    "plan_id",
    "seats_limit",
    "learner_id",
    "account_id",
)


def subscriptions_upsert(*, items: list[Any]) -> SyncResult:
    batch = validate_items(items, SUBSCRIPTION_SPECS, unique="external_id")
    for index, row in batch.rows:
        if ("learner" in row) == ("account" in row):
            batch.fail(index, "learner", "give exactly one of learner or account")
        elif row.get("cancelled_at") and row["cancelled_at"] < row["started_at"]:
            batch.fail(index, "cancelled_at", "is before started_at")
    batch.drop_failed()
    resolve_references(
        batch,
        field_name="learner",
        lookup=lambda ext: external_ids(Learner, ext),
        target="learner_id",
        what="learner",
    )
    resolve_references(
        batch,
        field_name="plan",
        lookup=lambda skus: dict(Product.objects.filter(sku__in=skus).values_list("sku", "id")),
        target="plan_id",
        what="product",
    )
    refuse_moves_past_stored(
        batch,
        Subscription,
        keys=("external_id",),
        moved="started_at",
        kept="cancelled_at",
        what="subscription",
    )
    with transaction.atomic():
        resolve_references(
            batch, field_name="account", lookup=accounts_ensure, target="account_id", what="account"
        )
        rows = []
        changed_at: dict[str, datetime | None] = {}
        for _, row in batch.rows:
            # The holder is exactly one of the two: name both so a switch clears the other.
            row.setdefault("learner_id", None)
            row.setdefault("account_id", None)
            changed_at[row["external_id"]] = row.pop("changed_at", None)
            rows.append(row)
        keys = list(changed_at)
        before = _states(keys, lock=True)
        counts = upsert(Subscription, rows, unique_fields=("external_id",))
        _record_changes(before, _states(keys, lock=False), changed_at)
        # Subscriptions feed the renewal stage and "owns product", for an account's learners too.
        holders = [row["learner_id"] for row in rows if row["learner_id"]]
        holders += [state["learner_id"] for state in before.values() if state["learner_id"]]
        learners_mark_dirty(holders)
        accounts = {row["account_id"] for row in rows if row["account_id"]}
        accounts |= {state["account_id"] for state in before.values() if state["account_id"]}
        if accounts:
            learners_mark_dirty_query(Learner.objects.filter(account_id__in=accounts).values("id"))
        scoring_kick_on_commit()
    return SyncResult(counts.created, counts.updated, batch.errors)


def _states(keys: list[str], *, lock: bool) -> dict[str, dict[str, Any]]:
    qs = Subscription.objects.filter(external_id__in=keys).order_by("id")
    if lock:
        qs = qs.select_for_update()
    return {row["external_id"]: row for row in qs.values(*_STATE, "started_at", "cancelled_at")}


def _contribution(state: dict[str, Any] | None) -> Decimal:
    if state is None or state["status"] not in CONTRIBUTING:
        return Decimal("0.00")
    return state["mrr"]


def _record_changes(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    changed_at: dict[str, datetime | None],
) -> None:
    """Append a SubscriptionChange for every subscription whose contributing MRR moved.

    The time is the item's ``changed_at`` if sent, else the start (a new subscription), the
    cancellation (a cancelled one) or now. A subscription first seen already cancelled gets
    both ends: it paid from its start to its cancellation. A holder switch is two changes:
    off the old holder, onto the new. A replayed batch moves nothing and records nothing.
    """
    now = timezone.now()
    changes = []
    for key, new in after.items():
        old = before.get(key)
        was, now_mrr = _contribution(old), _contribution(new)
        if old is None:
            when = changed_at[key] or new["started_at"]
        elif now_mrr == 0 and new["cancelled_at"] is not None:
            when = changed_at[key] or new["cancelled_at"]
        else:
            when = changed_at[key] or now
        if old is None and new["status"] == SubscriptionStatus.CANCELLED and new["mrr"] > 0:
            # First seen already cancelled (a history import): it paid from start to end.
            ended = new["cancelled_at"] or changed_at[key] or now
            changes.append(_change(new, new, new["started_at"], was, new["mrr"], ""))
            changes.append(_change(new, new, ended, new["mrr"], was, ""))
            continue
        holder = (new["learner_id"], new["account_id"])
        if old is not None and (old["learner_id"], old["account_id"]) != holder and was:
            changes.append(_change(new, old, when, was, Decimal("0.00"), ""))
            was = Decimal("0.00")
        if was == now_mrr:
            continue
        kind = ""
        if was and now_mrr > was and old is not None:
            if old["plan_id"] != new["plan_id"]:
                kind = ExpansionType.UPSELL
            elif (new["seats_limit"] or 0) > (old["seats_limit"] or 0):
                kind = ExpansionType.SEAT_EXPANSION
            else:
                kind = ExpansionType.USAGE
        changes.append(_change(new, new, when, was, now_mrr, kind))
    SubscriptionChange.objects.bulk_create(changes, batch_size=1000)


def _change(
    new: dict[str, Any],
    holder: dict[str, Any],
    when: datetime,
    was: Decimal,
    now_mrr: Decimal,
    kind: str,
) -> SubscriptionChange:
    return SubscriptionChange(
        subscription_id=new["id"],
        learner_id=holder["learner_id"],
        account_id=holder["account_id"],
        effective_at=when,
        mrr_before=was,
        mrr_after=now_mrr,
        expansion_type=kind,
    )


def subscription_changes_backfill() -> int:
    """Open the ledger for subscriptions that have none (created before it existed, or in bulk
    by the demo): a change at the start, and one at the cancellation (its ``cancelled_at``, or
    when it was last updated if that is missing). Returns the rows written."""
    changes = []
    missing = Subscription.objects.filter(changes__isnull=True, mrr__gt=0).values(
        *_STATE, "started_at", "cancelled_at", "updated_at"
    )
    for state in missing.iterator(chunk_size=2000):
        if state["status"] not in (*CONTRIBUTING, SubscriptionStatus.CANCELLED):
            continue
        zero = Decimal("0.00")
        changes.append(_change(state, state, state["started_at"], zero, state["mrr"], ""))
        if state["status"] == SubscriptionStatus.CANCELLED:
            ended = state["cancelled_at"] or state["updated_at"]
            changes.append(_change(state, state, ended, state["mrr"], zero, ""))
    SubscriptionChange.objects.bulk_create(changes, batch_size=2000)
    return len(changes)
