"""The sparse refresh against the SQL self-join it replaced (the oracle below, verbatim but
for its output), on random baskets: the same pairs, the same counts, ratios equal to 1e-12;
and the same table when the products are counted in blocks under a small memory budget."""

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from scipy import sparse

from expansion.commerce import affinity
from expansion.commerce.affinity import affinity_refresh
from expansion.commerce.models import CommerceSettings, Order, OrderLine, ProductAffinity
from tests.factories.expansion import OrderFactory, OrderLineFactory, ProductFactory
from tests.factories.learners import LearnerFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

ORACLE = """
WITH op AS (
  SELECT DISTINCT l.order_id, l.product_id
  FROM {line} l JOIN {order} o ON o.id = l.order_id
  WHERE o.placed_at >= %(since)s AND o.placed_at <= %(now)s
    AND l.refunded_amount < l.unit_price * l.quantity
), counts AS (
  SELECT product_id, COUNT(*) AS n FROM op
  GROUP BY product_id HAVING COUNT(*) >= %(floor)s
), kept AS (
  SELECT op.order_id, op.product_id
  FROM op JOIN counts c ON c.product_id = op.product_id
), pairs AS (
  SELECT a.product_id AS a_id, b.product_id AS b_id, COUNT(*) AS both_n
  FROM kept a JOIN kept b ON a.order_id = b.order_id AND a.product_id < b.product_id
  GROUP BY a.product_id, b.product_id HAVING COUNT(*) >= %(floor)s
), directed AS (
  SELECT a_id AS product_id, b_id AS other_id, both_n FROM pairs
  UNION ALL
  SELECT b_id, a_id, both_n FROM pairs
)
SELECT p.product_id, p.other_id, p.both_n, ca.n, cb.n, %(total)s,
  (p.both_n * 1.0 / %(total)s)::float8, (p.both_n * 1.0 / ca.n)::float8,
  (p.both_n * 1.0 * %(total)s / (ca.n * cb.n))::float8
FROM directed p JOIN counts ca ON ca.product_id = p.product_id
JOIN counts cb ON cb.product_id = p.other_id
"""


def oracle(now):
    policy = CommerceSettings.load()
    since = now - timedelta(days=policy.affinity_window_days)
    tables = {"line": OrderLine._meta.db_table, "order": Order._meta.db_table}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(DISTINCT l.order_id) FROM {line} l JOIN {order} o ON o.id = l.order_id"
            " WHERE o.placed_at >= %s AND o.placed_at <= %s"
            " AND l.refunded_amount < l.unit_price * l.quantity".format(**tables),
            [since, now],
        )
        total = cursor.fetchone()[0]
        floor = max(1, math.ceil(float(policy.affinity_min_support) * total - 1e-9))
        cursor.execute(
            ORACLE.format(**tables), {"since": since, "now": now, "floor": floor, "total": total}
        )
        return total, {(r[0], r[1]): r[2:] for r in cursor.fetchall()}


def stored():
    return {
        (r.product_id, r.other_id): (
            r.orders_both,
            r.orders_product,
            r.orders_other,
            r.orders_total,
            r.support,
            r.confidence,
            r.lift,
        )
        for r in ProductAffinity.objects.all()
    }


def assert_same(expected, got):
    assert got.keys() == expected.keys()
    for pair, want in expected.items():
        have = got[pair]
        assert have[:4] == want[:4], pair
        for x, y in zip(have[4:], want[4:], strict=True):
            assert abs(x - y) <= 1e-12 * max(1.0, abs(y)), (pair, x, y)


@pytest.fixture
def baskets(db):
    """400 random orders over 30 products: repeated lines of one product, refunded and
    partly refunded lines, orders outside the window and in the future."""
    CommerceSettings.objects.update_or_create(
        id=1, defaults={"affinity_min_support": Decimal("0.01"), "affinity_min_orders": 1}
    )
    rng = random.Random(20)
    products = [ProductFactory(price=Decimal("10.00")) for _ in range(30)]
    learner = LearnerFactory()
    weights = [1 / (i + 1) for i in range(len(products))]
    orders = OrderFactory.build_batch(400, learner=learner)
    for order in orders:
        order.placed_at = NOW - timedelta(days=rng.choice([1, 30, 200, 364, 366, 500, -1]))
    Order.objects.bulk_create(orders)
    lines = []
    for order in orders:
        for product in rng.choices(products, weights, k=rng.randint(1, 7)):
            refunded = rng.choice(
                [Decimal("0"), Decimal("0"), Decimal("0"), Decimal("5"), Decimal("10")]
            )
            lines.append(
                OrderLineFactory.build(order=order, product=product, refunded_amount=refunded)
            )
    OrderLine.objects.bulk_create(lines)
    return products


def test_the_sparse_refresh_stores_what_the_sql_join_computed(baskets):
    total, expected = oracle(NOW)
    result = affinity_refresh(now=NOW)
    assert len(expected) > 150  # the random baskets give pairs to compare
    assert (result.orders, result.pairs) == (total, len(expected))
    assert_same(expected, stored())
    assert set(ProductAffinity.objects.values_list("computed_at", flat=True)) == {NOW}


def test_counting_in_blocks_under_a_small_budget_gives_the_same_table(baskets, settings):
    _, expected = oracle(NOW)
    settings.AFFINITY_MAX_MEMORY_MB = 0  # every block one product wide
    affinity_refresh(now=NOW)
    assert_same(expected, stored())


def test_blocks_cover_every_column_once_and_respect_the_budget(monkeypatch):
    matrix = sparse.csc_array(
        np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=np.int32)
    )
    # Basket sizes 3, 3, 2, 4; the bound per column: 10, 9, 9, 10 (38 in all).
    assert affinity._column_blocks(matrix, 10**9) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    monkeypatch.setattr(affinity, "MIN_BLOCKS", 1)
    assert affinity._column_blocks(matrix, 19) == [(0, 2), (2, 4)]
    assert affinity._column_blocks(matrix, 18) == [(0, 1), (1, 3), (3, 4)]
    assert affinity._column_blocks(matrix, 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert affinity._column_blocks(matrix, 10**9) == [(0, 4)]


def test_a_second_refresh_replaces_the_table(baskets):
    affinity_refresh(now=NOW)
    first = stored()
    Order.objects.filter(placed_at__gte=NOW - timedelta(days=365)).delete()
    assert affinity_refresh(now=NOW).pairs == 0
    assert ProductAffinity.objects.count() == 0
    assert first  # there was something to replace


def test_ids_run_from_one_across_the_streamed_blocks(baskets, settings):
    settings.AFFINITY_MAX_MEMORY_MB = 0  # many blocks, each written as it is counted
    result = affinity_refresh(now=NOW)
    ids = sorted(ProductAffinity.objects.values_list("id", flat=True))
    assert ids == list(range(1, result.pairs + 1))
    first = ProductAffinity.objects.get(id=1)
    saved = ProductAffinity.objects.create(
        product_id=first.product_id,
        other_id=first.other_id + 10**6,  # a pair the refresh did not write
        orders_both=1,
        orders_product=1,
        orders_other=1,
        orders_total=1,
        support=0,
        confidence=0,
        lift=0,
        computed_at=NOW,
    )
    assert saved.id == result.pairs + 1  # the sequence carries on after the numbered rows


def test_a_failure_while_the_blocks_stream_in_keeps_the_old_table(baskets, settings, monkeypatch):
    affinity_refresh(now=NOW)
    before = stored()
    settings.AFFINITY_MAX_MEMORY_MB = 0
    real = affinity._pair_blocks

    def fails_after_one_block(*args, **kwargs):
        blocks = real(*args, **kwargs)
        yield next(blocks)
        raise MemoryError("out of memory counting the second block")

    monkeypatch.setattr(affinity, "_pair_blocks", fails_after_one_block)
    with pytest.raises(MemoryError, match="second block"):
        affinity_refresh(now=NOW + timedelta(days=1))
    assert stored() == before
    assert set(ProductAffinity.objects.values_list("computed_at", flat=True)) == {NOW}
    monkeypatch.setattr(affinity, "_pair_blocks", real)
    assert affinity_refresh(now=NOW).pairs == len(before)  # the connection is usable again


def test_read_in_small_slices_of_order_ids_gives_the_same_table(baskets, monkeypatch):
    # Orders in and out of the window interleave by id (their dates are drawn at random):
    # each slice keeps only its lines of orders in the window.
    _, expected = oracle(NOW)
    monkeypatch.setattr(affinity, "READ_ORDERS", 7)
    affinity_refresh(now=NOW)
    assert_same(expected, stored())


@pytest.mark.parametrize(
    "ids",
    [
        [5, 3, 3, 9, 5, 4],  # dense: the presence table
        [7],
        [10**12, 3, 10**12, 3, 10**9],  # sparse: np.unique
        list(range(40, 0, -3)) * 2,
    ],
)
def test_codes_number_ids_as_numpy_unique_does(ids):
    values = np.array(ids, dtype=np.int64)
    want_unique, want_codes = np.unique(values, return_inverse=True)
    unique, codes = affinity._codes(values)
    assert unique.tolist() == want_unique.tolist()
    assert codes.tolist() == want_codes.tolist()
