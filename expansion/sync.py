"""Bulk upserts of products, orders (with lines) and subscriptions from a billing system.

Same contract as learners.sync: validate item by item, write the valid items set-based in one
transaction, return counts and per-item errors; replaying a batch changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from learners.models import Course, Learner
from learners.sync import SyncResult, accounts_ensure, external_ids

from .batch import (
    FieldError,
    Spec,
    aware_datetime,
    boolean,
    choice,
    currency,
    integer,
    money,
    optional,
    past_datetime,
    resolve_references,
    string,
    upsert,
    validate_items,
)
from .models import Order, OrderLine, Product, ProductKind, Subscription, SubscriptionStatus

PRODUCT_SPECS = {
    "sku": Spec(string(max_length=100), required=True),
    "name": Spec(string(), required=True),
    "kind": Spec(choice(ProductKind.values), required=True),
    "price": Spec(money(), required=True),
    "currency": Spec(currency),
    "unit_cost": Spec(optional(money())),
    "course": Spec(optional(string())),
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
    "external_id": Spec(string(), required=True),
    "sku": Spec(string(max_length=100), required=True),
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
        raise FieldError(first["reason"], field=f"lines[{first['index']}].{first['field']}")
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


ORDER_SPECS = {
    "external_id": Spec(string(), required=True),
    "learner": Spec(string(), required=True),
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
    return SyncResult(counts.created, counts.updated, batch.errors)


SUBSCRIPTION_SPECS = {
    "external_id": Spec(string(), required=True),
    "learner": Spec(string()),
    "account": Spec(string()),
    "plan": Spec(string(max_length=100), required=True),
    "mrr": Spec(money(), required=True),
    "status": Spec(choice(SubscriptionStatus.values), required=True),
    "started_at": Spec(past_datetime, required=True),
    "renews_at": Spec(optional(aware_datetime)),
    "cancelled_at": Spec(optional(aware_datetime)),
    "seats_used": Spec(optional(integer(maximum=10_000_000))),
    "seats_limit": Spec(optional(integer(maximum=10_000_000))),
    "quota_used": Spec(optional(integer())),
    "quota_limit": Spec(optional(integer())),
}


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
    with transaction.atomic():
        resolve_references(
            batch, field_name="account", lookup=accounts_ensure, target="account_id", what="account"
        )
        rows = []
        for _, row in batch.rows:
            # The holder is exactly one of the two: name both so a switch clears the other.
            row.setdefault("learner_id", None)
            row.setdefault("account_id", None)
            rows.append(row)
        counts = upsert(Subscription, rows, unique_fields=("external_id",))
    return SyncResult(counts.created, counts.updated, batch.errors)
