"""Affinity from order lines: support, confidence and lift for every pair of products.

``affinity_refresh`` reads the window's (order, product) pairs packed as int8 by the server
(one value per slice of order ids), builds the order × product incidence matrix
(scipy.sparse, one 1 per product an order holds), counts every pair with a sparse product
``Xᵀ·X`` in column blocks and streams each block's pairs into one binary ``COPY`` as it is
counted.
An order counts a product once however many lines or units hold it, and fully refunded
lines do not count: a pair returned is not a pair bought.

Memory: ~50 bytes per order line read (the packed value, the id arrays, the matrix); the
pair count of a block needs at most Σ over its columns of Σ over the orders holding each of
their basket sizes entries before duplicates merge, and blocks are cut so that this stays
within ``AFFINITY_MAX_MEMORY_MB``; ~100 bytes per pair for one block's rows at a time.

Recommendations pass seed 001's ethics gate: lift above ``affinity_min_lift`` (default 1),
at least ``affinity_min_orders`` orders holding the pair, support at least
``affinity_min_support``, both products active, and no marketer's block on the pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter
from scipy import sparse

from expansion.core.db.bulk import table_replaced
from learners.models import Enrollment

from .models import CommerceSettings, Order, OrderLine, PairReview, Product, ProductAffinity


@dataclass(frozen=True)
class AffinityResult:
    orders: int
    pairs: int
    computed_at: datetime


# PostgreSQL's binary COPY framing: an 11-byte signature, a flags word and an empty header
# extension; a trailer of -1 as the field count.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
# Order ids per read: at 16 bytes a line, 2,000,000 orders stay below the 1 GB value cap
# while baskets average under 33 lines.
READ_ORDERS = 2_000_000
# The pair count is cut into at least this many column blocks (see _column_blocks).
MIN_BLOCKS = 8
# The columns of ProductAffinity as written, each a (length, value) field: bigint ids,
# integer counts, double precision ratios, timestamptz as microseconds since 2000-01-01.
_COLUMNS = (
    ("id", ">i8"),
    ("product_id", ">i8"),
    ("other_id", ">i8"),
    ("orders_both", ">i4"),
    ("orders_product", ">i4"),
    ("orders_other", ">i4"),
    ("orders_total", ">i4"),
    ("support", ">f8"),
    ("confidence", ">f8"),
    ("lift", ">f8"),
    ("computed_at", ">i8"),
)
_PAIR_OUT = np.dtype(
    [("n", ">i2")] + [f for name, kind in _COLUMNS for f in (("l_" + name, ">i4"), (name, kind))]
)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _order_products(cursor, since: datetime, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """The (order id, product id) of every counted line in the window.

    Each slice of orders comes back as two values packed as big-endian int8 by the server
    (``int8send``) and read straight into numpy: the ids of the slice's orders in the window,
    and the (order, product) of the slice's counted lines — every order's, without a join;
    numpy keeps the lines of the orders in the window with a presence table over the slice's
    ids. The join it replaces hashed the window's orders and probed the hash once per line:
    at 1,000,000 orders the hash outgrew the processor's cache (and ``work_mem``, spilling
    to disk), 12× the time for 10× the lines where the two scans take 10×
    (``bench/growth.py``). The lines read beyond the window are those of orders outside it
    whose ids fall between the window's first and last order (ids follow time, so few).
    A binary COPY would hand psycopg one message per row (531,225 of them for the UCI
    baskets: 2.5 s against 0.7 s this way). A value is capped at 1 GB, 16 bytes a line:
    slices of ``READ_ORDERS`` order ids keep each far below it.
    """
    line = OrderLine._meta.db_table
    order = Order._meta.db_table
    cursor.execute(
        f"SELECT MIN(id), MAX(id) FROM {order} WHERE placed_at >= %s AND placed_at <= %s",
        [since, now],
    )
    low, high = cursor.fetchone()
    if low is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    parts = []
    # Binary results (a cursor that binds on the server: Django's binds on the client, and
    # such a cursor cannot): bytea comes as its bytes, not as hex text twice their length
    # to decode (1.0–1.2 s against 1.4–1.8 s for 48 MB at 1,000,000 orders).
    with psycopg.Cursor(cursor.cursor.connection) as packed_reader:
        for start in range(low, high + 1, READ_ORDERS):
            stop = min(start + READ_ORDERS, high + 1)
            packed_reader.execute(
                f"""
                SELECT
                  (SELECT string_agg(int8send(o.id), ''::bytea) FROM {order} o
                   WHERE o.placed_at >= %s AND o.placed_at <= %s AND o.id >= %s AND o.id < %s),
                  (SELECT string_agg(int8send(l.order_id) || int8send(l.product_id), ''::bytea)
                   FROM {line} l
                   WHERE l.order_id >= %s AND l.order_id < %s
                     AND l.refunded_amount < l.unit_price * l.quantity)
                """,
                [since, now, start, stop, start, stop],
                binary=True,
                # Planned for each slice's ids: a generic plan (psycopg prepares a statement
                # run five times, DATABASE_PREPARED_STATEMENTS) cannot see how narrow they are.
                prepare=False,
            )
            row = packed_reader.fetchone()
            assert row is not None  # an aggregate: one row
            window, packed = row
            if not window or not packed:
                continue
            inside = np.zeros(stop - start, dtype=bool)
            inside[np.frombuffer(window, dtype=">i8").astype(np.int64) - start] = True
            pairs = np.frombuffer(packed, dtype=">i8").reshape(-1, 2).astype(np.int64)
            parts.append(pairs[inside[pairs[:, 0] - start]])
    pairs = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
    return pairs[:, 0], pairs[:, 1]


def _codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` in linear time when the ids span a range not
    much wider than their count (order and product ids do: sequences hand them out): a
    presence table over the range and its running count, where ``np.unique`` sorts."""
    low, high = int(ids.min()), int(ids.max())
    span = high - low + 1
    if span > 4 * len(ids) + 4096:  # sparse ids: the table would outweigh the sort
        return np.unique(ids, return_inverse=True)
    offsets = ids - low
    present = np.zeros(span, dtype=bool)
    present[offsets] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present) + low, rank[offsets]


def _incidence(orders: np.ndarray, products: np.ndarray) -> tuple[sparse.csc_array, np.ndarray]:
    """The order × product 0/1 matrix (CSC) and the product id of each column.

    Built by rows, where merging a product's several lines in one order sorts a basket's
    few entries, then turned into columns (a linear transposition): merging in columns
    sorted each product's whole column of orders."""
    _, rows = _codes(orders)
    product_ids, cols = _codes(products)
    ones = np.ones(len(rows), dtype=np.int32)
    by_order = sparse.csr_array((ones, (rows, cols)), shape=(int(rows.max()) + 1, len(product_ids)))
    by_order.sum_duplicates()
    by_order.data[:] = 1  # several lines of one product in one order count once
    return sparse.csc_array(by_order), product_ids


def _column_blocks(matrix: sparse.csc_array, budget_entries: int) -> list[tuple[int, int]]:
    """Column ranges whose pair counts each need at most ``budget_entries`` entries (a block
    holds one column at least), and at least ``MIN_BLOCKS`` of them.

    Column j of Xᵀ·X holds at most Σ over the orders holding j of their basket sizes entries
    before duplicates merge; a block ends where that running sum would pass the budget.
    A block [s, e) is multiplied with the columns before e only (the pairs a < b), so more
    blocks do less of the symmetric product: 8 blocks do 9/16 of it.
    """
    # Basket size per order: the columns holding each row (no transposition needed).
    sizes = np.bincount(matrix.indices, minlength=matrix.shape[0]).astype(np.int64)
    ends = np.cumsum(matrix.T @ sizes)
    width = matrix.shape[1]
    if not width:
        return []
    budget = max(1, min(budget_entries, int(ends[-1]) // MIN_BLOCKS + 1))
    blocks: list[tuple[int, int]] = []
    start = 0
    while start < width:
        base = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, base + budget, side="right")), start + 1)
        blocks.append((start, min(stop, width)))
        start = stop
    return blocks


def _pair_blocks(
    matrix: sparse.csc_array, floor: int, budget_entries: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Column pairs (a < b) held together by at least ``floor`` orders, with their counts,
    one column block at a time."""
    by_product = sparse.csr_array(matrix.T)  # product × order
    for start, stop in _column_blocks(matrix, budget_entries):
        # Row b - start of the block counts b (start ≤ b < stop) with every a < stop.
        block = sparse.csr_array(by_product[start:stop] @ by_product[:stop].T)
        # The floor first (it leaves few entries), then the rows of those only.
        at = np.flatnonzero(block.data >= floor)
        b = np.searchsorted(block.indptr, at, side="right") - 1 + start
        a = block.indices[at].astype(np.int64)
        keep = a < b
        if keep.any():
            yield a[keep], b[keep], block.data[at[keep]].astype(np.int64)


def _copy_rows(cursor, table: str, blocks: Iterable[dict[str, Any]], **same: Any) -> int:
    """Write blocks of equal-length column arrays into ``table`` in one binary COPY, ``same``
    for every row; returns the rows written.

    The blocks are handed to a writer thread (psycopg's queued writer): the server stores
    one block while the next is counted.
    """
    names = ", ".join(name for name, _ in _COLUMNS)
    written = 0
    with cursor.cursor.copy(
        f"COPY {table} ({names}) FROM STDIN (FORMAT binary)",
        writer=QueuedLibpqWriter(cursor.cursor),
    ) as copy:
        copy.write(_COPY_HEADER)
        for columns in blocks:
            count = np.size(columns["product_id"])
            rows = np.empty(count, dtype=_PAIR_OUT)
            rows["n"] = len(_COLUMNS)
            values = {**columns, **same, "id": np.arange(written + 1, written + count + 1)}
            for name, kind in _COLUMNS:
                rows["l_" + name] = np.dtype(kind).itemsize
                rows[name] = values[name]
            copy.write(rows.tobytes())
            written += count
        copy.write(_COPY_TRAILER)
    return written


def affinity_refresh(*, now: datetime | None = None) -> AffinityResult:
    """Replace the affinity table with pairs at or above the minimum support. Idempotent.

    The pairs are counted block by block and streamed into a new table beside the live one
    (``table_replaced``), which is swapped in at the end: readers read the old rows until
    then, wait only for the swap and see the new table whole. Two refreshes at once both
    finish; the last to commit stays.
    """
    now = now or timezone.now()
    policy = CommerceSettings.load()
    since = now - timedelta(days=policy.affinity_window_days)
    with connection.cursor() as cursor:
        orders, products = _order_products(cursor, since, now)
    total, blocks = _affinity_blocks(
        orders,
        products,
        min_support=float(policy.affinity_min_support),
        budget_entries=int(settings.AFFINITY_MAX_MEMORY_MB) * 2**20 // 16,
    )
    table = ProductAffinity._meta.db_table
    pairs = 0
    with transaction.atomic(), connection.cursor() as cursor:
        with table_replaced(cursor, table) as staging:
            pairs = _copy_rows(
                cursor,
                staging,
                blocks,
                orders_total=total,
                computed_at=(now - _PG_EPOCH) // timedelta(microseconds=1),
            )
            # Ids numbered here rather than drawn one by one from the sequence; the
            # sequence carries on after them for rows saved by other means.
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [staging, max(1, pairs)]
            )
    return AffinityResult(orders=total, pairs=pairs, computed_at=now)


def _affinity_blocks(
    orders: np.ndarray, products: np.ndarray, *, min_support: float, budget_entries: int
) -> tuple[int, Iterator[dict[str, Any]]]:
    """The order count, and the table's columns for the pairs at or above ``min_support``,
    one column block at a time (counted as they are consumed)."""
    if not len(orders):
        return 0, iter(())
    matrix, product_ids = _incidence(orders, products)
    total = matrix.shape[0]
    # A pair below this many orders cannot reach the minimum support; products below it are
    # dropped before counting pairs, which keeps the product small.
    floor = max(1, math.ceil(min_support * total - 1e-9))
    per_product = np.diff(matrix.indptr).astype(np.int64)
    kept = np.flatnonzero(per_product >= floor)
    if len(kept) < len(product_ids):  # selecting every column would copy the matrix
        matrix, product_ids, per_product = matrix[:, kept], product_ids[kept], per_product[kept]

    def columns() -> Iterator[dict[str, Any]]:
        for a, b, both in _pair_blocks(sparse.csc_array(matrix), floor, budget_entries):
            # Both directions of each unordered pair.
            first, second = np.concatenate([a, b]), np.concatenate([b, a])
            both = np.concatenate([both, both])
            n_first, n_second = per_product[first], per_product[second]
            yield {
                "product_id": product_ids[first],
                "other_id": product_ids[second],
                "orders_both": both,
                "orders_product": n_first,
                "orders_other": n_second,
                "support": both / total,
                "confidence": both / n_first,
                # Integer products are exact below 2**53; one rounding, at the division.
                "lift": (both * total).astype(np.float64) / (n_first * n_second),
            }

    return total, columns()


def affinity_gated(qs: QuerySet[ProductAffinity] | None = None) -> QuerySet[ProductAffinity]:
    """Pairs that pass the ethics gate and may drive automatic recommendations."""
    policy = CommerceSettings.load()
    qs = ProductAffinity.objects.all() if qs is None else qs
    blocked = PairReview.objects.filter(
        product_id=OuterRef("product_id"), other_id=OuterRef("other_id"), blocked=True
    )
    return qs.filter(
        lift__gt=float(policy.affinity_min_lift),
        orders_both__gte=policy.affinity_min_orders,
        support__gte=float(policy.affinity_min_support),
        product__is_active=True,
        other__is_active=True,
    ).exclude(Exists(blocked))


def gate_reasons(pair: ProductAffinity, policy: CommerceSettings, blocked: bool) -> list[str]:
    """Why a pair fails the gate (empty: it passes), for the admin."""
    reasons = []
    if pair.lift <= float(policy.affinity_min_lift):
        reasons.append(f"lift {pair.lift:.2f} ≤ {policy.affinity_min_lift}")
    if pair.orders_both < policy.affinity_min_orders:
        reasons.append(f"{pair.orders_both} orders < {policy.affinity_min_orders}")
    if pair.support < float(policy.affinity_min_support):
        reasons.append(f"support {pair.support:.4f} < {policy.affinity_min_support}")
    if blocked:
        reasons.append("blocked by review")
    return reasons


@dataclass(frozen=True)
class Recommendation:
    product: Product
    because_of: Product
    lift: float
    confidence: float
    orders_both: int


def recommendations_for_product(*, product: Product, limit: int = 5) -> list[Recommendation]:
    """What pairs well with ``product``, by lift, through the ethics gate."""
    pairs = affinity_gated(ProductAffinity.objects.filter(product=product)).select_related(
        "product", "other"
    )
    return [
        Recommendation(p.other, p.product, p.lift, p.confidence, p.orders_both)
        for p in pairs.order_by("-lift", "-orders_both", "other_id")[:limit]
    ]


def recommendations_for_learner(*, learner_id: int, limit: int = 5) -> list[Recommendation]:
    """Products that pair well with what the learner bought and that they do not own yet —
    nor the course of which they are enrolled in or completed (a course can come with a
    subscription or a bundle rather than an order line of its own).

    Each candidate appears once, under the owned product it pairs best with.
    """
    owned = (
        OrderLine.objects.filter(order__learner_id=learner_id)
        .filter(refunded_amount__lt=F("unit_price") * F("quantity"))
        .values("product_id")
    )
    taken = Enrollment.objects.filter(learner_id=learner_id).values("course_id")
    pairs = (
        affinity_gated(ProductAffinity.objects.filter(product_id__in=owned))
        .exclude(other_id__in=owned)
        .exclude(other__course_id__in=taken)
        .select_related("product", "other")
        .order_by("other_id", "-lift", "product_id")
    )
    best: dict[int, ProductAffinity] = {}
    for pair in pairs[:1000]:
        best.setdefault(pair.other_id, pair)
    ranked = sorted(best.values(), key=lambda p: (-p.lift, -p.orders_both, p.other_id))
    return [
        Recommendation(p.other, p.product, p.lift, p.confidence, p.orders_both)
        for p in ranked[:limit]
    ]


def pair_lift(*, product_ids: list[int]) -> list[ProductAffinity]:
    """The stored affinity rows among ``product_ids`` (one direction per pair), for bundles."""
    return list(
        ProductAffinity.objects.filter(
            product_id__in=product_ids, other_id__in=product_ids, product_id__lt=F("other_id")
        ).select_related("product", "other")
    )
