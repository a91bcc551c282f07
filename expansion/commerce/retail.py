"""Import the UCI Online Retail invoices (one row per invoice) as learners and orders.

Each CustomerID becomes a learner ``retail-<id>``; each invoice an order ``retail-<no>`` with
one line of the ``RETAIL-BASKET`` product at the invoice total, placed at midnight UTC of the
invoice date. Goes through the sync services in batches, so importing twice changes nothing.
Rows with no customer or a non-positive total are skipped and counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from learners.sync import learners_upsert

from .sync import orders_upsert, products_upsert

BATCH = 1000
SKU = "RETAIL-BASKET"


@dataclass
class RetailCounts:
    customers: int = 0
    orders_created: int = 0
    orders_updated: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def retail_import(*, path: Path) -> RetailCounts:
    counts = RetailCounts()
    orders: list[dict[str, Any]] = []
    customers: set[str] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            customer = (row.get("CustomerID") or "").strip()
            try:
                total = Decimal(row["TotalPrice"]).quantize(Decimal("0.01"))
            except (InvalidOperation, KeyError):
                counts.skipped += 1
                continue
            if not customer or total <= 0:
                counts.skipped += 1
                continue
            customer = customer.removesuffix(".0")
            customers.add(customer)
            orders.append(
                {
                    "external_id": f"retail-{row['InvoiceNo']}",
                    "learner": f"retail-{customer}",
                    "placed_at": f"{row['InvoiceDate'][:10]}T00:00:00+00:00",
                    "lines": [
                        {"external_id": "1", "sku": SKU, "quantity": 1, "unit_price": str(total)}
                    ],
                }
            )
    products_upsert(
        items=[{"sku": SKU, "name": "Online retail basket", "kind": "addon", "price": "0.00"}]
    )
    people = [{"external_id": f"retail-{c}"} for c in sorted(customers)]
    for start in range(0, len(people), BATCH):
        result = learners_upsert(items=people[start : start + BATCH])
        counts.errors += result.errors
    counts.customers = len(people)
    for start in range(0, len(orders), BATCH):
        result = orders_upsert(items=orders[start : start + BATCH])
        counts.orders_created += result.created
        counts.orders_updated += result.updated
        counts.errors += result.errors
    return counts


BASKET_SHOPPER = "retail-basket-shopper"


@dataclass
class BasketCounts:
    products: int = 0
    orders_created: int = 0
    orders_updated: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def retail_baskets_import(*, path: Path, placed_at: str) -> BasketCounts:
    """Import ``online_retail_baskets.csv`` (one basket a line, comma-separated stock codes).

    Each basket becomes an order ``basket-<line>`` of one anonymous learner, one line per
    distinct stock code, each product ``STOCK-<code>`` at a nominal price of 1.00 (the file
    carries no prices; affinity needs only which products share an order). Idempotent.
    """
    counts = BasketCounts()
    orders: list[dict[str, Any]] = []
    codes: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            items = list(dict.fromkeys(code.strip() for code in raw.split(",") if code.strip()))
            if not items:
                counts.skipped += 1
                continue
            codes.update(items)
            orders.append(
                {
                    "external_id": f"basket-{number}",
                    "learner": BASKET_SHOPPER,
                    "placed_at": placed_at,
                    "lines": [
                        {"external_id": code, "sku": f"STOCK-{code}", "unit_price": "1.00"}
                        for code in items
                    ],
                }
            )
    learners_upsert(items=[{"external_id": BASKET_SHOPPER, "name": "Online retail baskets"}])
    catalogue = [
        {"sku": f"STOCK-{code}", "name": f"Stock item {code}", "kind": "addon", "price": "1.00"}
        for code in sorted(codes)
    ]
    for start in range(0, len(catalogue), BATCH):
        result = products_upsert(items=catalogue[start : start + BATCH])
        counts.errors += result.errors
    counts.products = len(catalogue)
    for start in range(0, len(orders), BATCH):
        result = orders_upsert(items=orders[start : start + BATCH])
        counts.orders_created += result.created
        counts.orders_updated += result.updated
        counts.errors += result.errors
    return counts
