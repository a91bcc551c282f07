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
