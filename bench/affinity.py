"""Affinity: the product's refresh against bare scipy ``Xᵀ·X`` and mlxtend (issue 20).

    python bench/affinity.py                                  # the UCI baskets, 1,000,000 lines
    python bench/affinity.py PATH --lines 200000 --mlxtend-support 0.02

1. Loads the UCI Online Retail baskets (``online_retail_baskets.csv``: one basket a line,
   comma-separated stock codes) as orders of one learner in a scratch database (``--pg``),
   one line per distinct stock code, each product ``STOCK-<code>``, with COPY.
2. Times ``affinity_refresh`` (reading the pairs from PostgreSQL, counting, writing the table
   back), ``--runs`` times; its peak Python memory (tracemalloc, which sees numpy and scipy's
   arrays) on one more run.
3. The baseline: plain scipy on the same baskets already in memory as integer arrays —
   the incidence matrix, ``Xᵀ·X``, support, confidence and lift for every co-occurring pair
   (no floor), both directions. Every stored pair is compared with it.
4. mlxtend's ``apriori`` + ``association_rules`` at ``--mlxtend-support`` (it cannot finish at
   the product's 0.001 in reasonable memory and time): every rule of one item to one item must
   be a stored pair with the same support, confidence and lift, and every stored pair at that
   support a rule.
5. ``--lines`` synthetic order lines (Zipf-popular products, baskets of 1–12) in the same
   database, the refresh timed again (target < 10 s at 1,000,000).

Last line: ``ratio=<baseline seconds / product refresh seconds>`` on the UCI baskets (target
≥ 0.5: the product within 2× of the bare computation, its reading and writing included).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from scipy import sparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASKETS = ROOT.parent / "shared" / "data" / "retail" / "online_retail_baskets.csv"
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def read_baskets(path: Path) -> list[list[str]]:
    baskets = []
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            items = list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
            if items:
                baskets.append(items)
    return baskets


def load_orders(baskets_rows: np.ndarray, baskets_products: np.ndarray, skus: list[str]) -> dict:
    """COPY the products, one learner's orders and their lines; returns sku → product id."""
    from django.db import connection

    from expansion.commerce.models import Order, OrderLine, Product, ProductAffinity
    from learners.models import Learner
    from learners.sync import learners_upsert

    learners_upsert(items=[{"external_id": "bench-basket-shopper", "name": "Baskets"}])
    learner_id = Learner.objects.get(external_id="bench-basket-shopper").id
    with connection.cursor() as cursor:
        for model in (ProductAffinity, OrderLine, Order, Product):
            cursor.execute(f"TRUNCATE {model._meta.db_table} CASCADE")
        stamp = NOW.isoformat()
        with cursor.cursor.copy(
            f"COPY {Product._meta.db_table} (sku, name, kind, price, currency, is_active,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            copy.write(
                "".join(
                    f"{sku}\tStock item {sku}\taddon\t1.00\tUSD\tt\t{stamp}\t{stamp}\n"
                    for sku in skus
                )
            )
        cursor.execute(f"SELECT sku, id FROM {Product._meta.db_table}")
        ids = dict(cursor.fetchall())
        orders = int(baskets_rows.max()) + 1
        # Setup only: the bench's rows are consistent by construction, so the foreign-key
        # triggers (two per line) are skipped (the bench connects as a superuser).
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            f"INSERT INTO {Order._meta.db_table} (id, external_id, learner_id, placed_at,"
            " currency, created_at, updated_at)"
            " SELECT n, 'basket-' || n, %s, %s, 'USD', %s, %s FROM generate_series(1, %s) n",
            [learner_id, NOW, NOW, NOW, orders],
        )
        product_ids = np.array([ids[sku] for sku in skus])
        cursor.execute(
            f"INSERT INTO {OrderLine._meta.db_table} (order_id, external_id, product_id,"
            " quantity, unit_price, refunded_amount)"
            " SELECT o, n::text, p, 1, 1.00, 0"
            " FROM unnest(%s::int8[], %s::int8[]) WITH ORDINALITY AS t(o, p, n)",
            [(baskets_rows + 1).tolist(), product_ids[baskets_products].tolist()],
        )
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{Order._meta.db_table}', 'id'), {orders})"
        )
        cursor.execute(f"ANALYZE {Order._meta.db_table}")
        cursor.execute(f"ANALYZE {OrderLine._meta.db_table}")
    return ids


def time_refresh(runs: int) -> tuple[list[float], object]:
    from django.db import close_old_connections

    from expansion.commerce.affinity import affinity_refresh

    times, result = [], None
    for _ in range(runs):
        close_old_connections()
        started = time.perf_counter()
        result = affinity_refresh(now=NOW)
        times.append(time.perf_counter() - started)
    return times, result


def breakdown() -> str:
    """One more refresh, step by step: read, matrix, count and copy (overlapped), indexes —
    the same calls as the refresh."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection, transaction

    from expansion.commerce import affinity
    from expansion.commerce.models import CommerceSettings, ProductAffinity
    from expansion.core.db.bulk import table_replaced

    policy = CommerceSettings.load()
    steps = []
    started = time.perf_counter()
    with connection.cursor() as cursor:
        orders, products = affinity._order_products(
            cursor, NOW - timedelta(days=policy.affinity_window_days), NOW
        )
    steps.append(("read", time.perf_counter() - started))
    started = time.perf_counter()
    total, blocks = affinity._affinity_blocks(
        orders,
        products,
        min_support=float(policy.affinity_min_support),
        budget_entries=int(settings.AFFINITY_MAX_MEMORY_MB) * 2**20 // 16,
    )
    steps.append(("matrix", time.perf_counter() - started))
    table = ProductAffinity._meta.db_table
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with table_replaced(cursor, table) as staging:
            affinity._copy_rows(cursor, staging, blocks, orders_total=total, computed_at=0)
            steps.append(("count and copy, overlapped", time.perf_counter() - started))
        steps.append(("indexes, analyse and swap", time.perf_counter() - started - steps[-1][1]))
    steps.append(("commit", time.perf_counter() - started - steps[-1][1] - steps[-2][1]))
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps)


def baseline(rows: np.ndarray, cols: np.ndarray, products: int) -> tuple[float, dict]:
    """Bare scipy: incidence matrix, Xᵀ·X, support/confidence/lift of every pair."""
    started = time.perf_counter()
    x = sparse.csr_array(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)),
        shape=(int(rows.max()) + 1, products),
    )
    x.sum_duplicates()
    x.data[:] = 1
    total = x.shape[0]
    n = np.asarray(x.sum(axis=0)).ravel().astype(np.int64)
    both = sparse.triu(sparse.csr_array(x.T @ x), k=1).tocoo()
    a = np.concatenate([both.row, both.col]).astype(np.int64)
    b = np.concatenate([both.col, both.row]).astype(np.int64)
    count = np.concatenate([both.data, both.data]).astype(np.int64)
    support = count / total
    confidence = count / n[a]
    lift = support / ((n[a] / total) * (n[b] / total))
    seconds = time.perf_counter() - started
    order = np.argsort(a * products + b)
    return seconds, {
        "key": (a * products + b)[order],
        "count": count[order],
        "support": support[order],
        "confidence": confidence[order],
        "lift": lift[order],
    }


def stored_pairs(index_of: dict[int, int], products: int) -> dict:
    from expansion.commerce.models import ProductAffinity

    values = np.array(
        list(
            ProductAffinity.objects.values_list(
                "product_id", "other_id", "orders_both", "support", "confidence", "lift"
            )
        ),
        dtype=np.float64,
    )
    lookup = np.vectorize(index_of.__getitem__, otypes=[np.int64])
    a, b = lookup(values[:, 0].astype(np.int64)), lookup(values[:, 1].astype(np.int64))
    return {
        "key": a * products + b,
        "count": values[:, 2].astype(np.int64),
        "support": values[:, 3],
        "confidence": values[:, 4],
        "lift": values[:, 5],
    }


def max_differences(mine: dict, reference: dict) -> tuple[int, dict[str, float]]:
    """Pairs of ``mine`` missing from ``reference``, and the largest difference of each ratio."""
    at = np.searchsorted(reference["key"], mine["key"])
    at = np.minimum(at, len(reference["key"]) - 1)
    found = reference["key"][at] == mine["key"]
    diffs = {
        name: float(np.max(np.abs(mine[name][found] - reference[name][at[found]]), initial=0.0))
        for name in ("count", "support", "confidence", "lift")
    }
    return int((~found).sum()), diffs


def mlxtend_compare(rows, cols, skus, index_by_col, stored: dict, products: int, floor: float):
    import pandas as pd
    from mlxtend.frequent_patterns import apriori, association_rules

    x = sparse.csr_array(
        (np.ones(len(rows), dtype=bool), (rows, cols)), shape=(int(rows.max()) + 1, len(skus))
    ).toarray()
    frame = pd.DataFrame(x, columns=range(len(skus)))
    started = time.perf_counter()
    frequent = apriori(frame, min_support=floor, max_len=2)
    rules = association_rules(
        frequent, num_itemsets=len(frame), metric="confidence", min_threshold=0.0
    )
    seconds = time.perf_counter() - started
    rules = rules[(rules["antecedents"].map(len) == 1) & (rules["consequents"].map(len) == 1)]
    a = np.array([index_by_col[next(iter(s))] for s in rules["antecedents"]], dtype=np.int64)
    b = np.array([index_by_col[next(iter(s))] for s in rules["consequents"]], dtype=np.int64)
    theirs = {
        "key": a * products + b,
        "count": np.rint(rules["support"].to_numpy() * x.shape[0]).astype(np.int64),
        "support": rules["support"].to_numpy(),
        "confidence": rules["confidence"].to_numpy(),
        "lift": rules["lift"].to_numpy(),
    }
    missing, diffs = max_differences(theirs, stored)
    at_floor = int((stored["support"] >= floor - 1e-12).sum())
    return seconds, len(rules), missing, at_floor, diffs


def synthetic(lines: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, int]:
    """Order lines over 5,000 Zipf-popular products in baskets of 1–12 distinct products."""
    rng = np.random.default_rng(seed)
    products = 5_000
    popularity = 1 / np.arange(1, products + 1) ** 0.8
    popularity /= popularity.sum()
    sizes = rng.integers(1, 13, size=lines // 4 + 1)
    # 5 % more than asked: repeats of a product in a basket are merged below.
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), lines * 1.05) + 1]
    rows = np.repeat(np.arange(len(sizes)), sizes)
    cols = rng.choice(products, size=len(rows), p=popularity)
    # One line per product in a basket, as an order sync would store it; exactly ``lines``.
    key = np.unique(rows.astype(np.int64) * products + cols)[:lines]
    rows, cols = key // products, key % products
    return rows, cols, products


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_BASKETS)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--mlxtend-support", type=float, default=0.02)
    parser.add_argument("--skip-mlxtend", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"{args.path}: no such file (the UCI baskets; pass the path)")

    db_name = f"expansion_affinity_{os.getpid()}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
        print(f"PostgreSQL {conn.info.server_version}", flush=True)
    os.environ["DATABASE_URL"] = urlunsplit(urlsplit(args.pg)._replace(path=f"/{db_name}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "expansion.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0)
        from expansion.commerce.models import CommerceSettings

        policy = CommerceSettings.load()
        print(
            f"gate: min support {policy.affinity_min_support}, window "
            f"{policy.affinity_window_days} days",
            flush=True,
        )

        baskets = read_baskets(args.path)
        skus_of = {}
        rows_list, cols_list = [], []
        for n, items in enumerate(baskets):
            for code in items:
                rows_list.append(n)
                cols_list.append(skus_of.setdefault(code, len(skus_of)))
        rows, cols = np.array(rows_list), np.array(cols_list)
        skus = [f"STOCK-{code}" for code in skus_of]
        started = time.perf_counter()
        ids = load_orders(rows, cols, skus)
        print(
            f"UCI baskets: {len(baskets):,} orders, {len(rows):,} (order, product) lines, "
            f"{len(skus):,} products; loaded with COPY in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        index_of = {ids[sku]: col for col, sku in enumerate(skus)}

        times, result = time_refresh(args.runs)
        product_s = min(times)
        print(
            f"product refresh: {result.pairs:,} directed pairs from {result.orders:,} orders; "
            f"{', '.join(f'{t:.2f}' for t in times)} s (best {product_s:.2f} s)",
            flush=True,
        )
        print(f"product refresh, step by step: {breakdown()}", flush=True)
        tracemalloc.start()
        time_refresh(1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"product refresh peak Python memory: {peak / 2**20:.0f} MB", flush=True)

        base_times = []
        for _ in range(args.runs):
            seconds, reference = baseline(rows, cols, len(skus))
            base_times.append(seconds)
        base_s = min(base_times)
        print(
            f"baseline scipy Xᵀ·X, all {len(reference['key']):,} directed pairs: "
            f"{', '.join(f'{t:.2f}' for t in base_times)} s (best {base_s:.2f} s)",
            flush=True,
        )
        stored = stored_pairs(index_of, len(skus))
        missing, diffs = max_differences(stored, reference)
        print(
            f"product vs baseline: {len(stored['key']):,} stored pairs, {missing} not in the "
            f"baseline; max |difference| count {diffs['count']:.0f}, support "
            f"{diffs['support']:.1e}, confidence {diffs['confidence']:.1e}, lift "
            f"{diffs['lift']:.1e}",
            flush=True,
        )
        order = np.argsort(stored["key"])
        stored = {name: values[order] for name, values in stored.items()}

        if not args.skip_mlxtend:
            seconds, rules, missing, at_floor, diffs = mlxtend_compare(
                rows,
                cols,
                skus,
                dict(enumerate(range(len(skus)))),
                stored,
                len(skus),
                args.mlxtend_support,
            )
            print(
                f"mlxtend apriori + association_rules at support {args.mlxtend_support}: "
                f"{seconds:.1f} s, {rules:,} one-to-one rules, {missing} not stored; stored "
                f"pairs at that support {at_floor:,}; max |difference| support "
                f"{diffs['support']:.1e}, confidence {diffs['confidence']:.1e}, lift "
                f"{diffs['lift']:.1e}",
                flush=True,
            )

        if args.lines:
            s_rows, s_cols, s_products = synthetic(args.lines)
            started = time.perf_counter()
            load_orders(s_rows, s_cols, [f"SYN-{n}" for n in range(s_products)])
            load_s = time.perf_counter() - started
            s_times, s_result = time_refresh(args.runs)
            print(
                f"synthetic: {len(s_rows):,} order lines, {int(s_rows.max()) + 1:,} orders, "
                f"{s_products:,} products (loaded in {load_s:.1f} s); refresh "
                f"{s_result.pairs:,} directed pairs in "
                f"{', '.join(f'{t:.2f}' for t in s_times)} s (best {min(s_times):.2f} s; "
                f"target < 10 s)",
                flush=True,
            )
        print(f"ratio={base_s / product_s:.3f}")
    finally:
        connections.close_all()
        if args.keep:
            print(f"kept database {db_name}", file=sys.stderr)
        else:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
