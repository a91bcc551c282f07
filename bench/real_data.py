"""Scores on real data: OULAD outcomes by LPS band (with AUC) and the RFM cells of UCI retail.

    python bench/real_data.py --oulad ../shared/data/oulad \
        --retail ../shared/data/retail/online_retail_invoices.csv

Creates a scratch PostgreSQL database (``--pg``), imports both datasets with the product's
commands, scores them with the product's scoring pass and prints the tables that
bench/README.md reports. OULAD enrollments are scored at two thirds of each presentation —
before the final assessments and before the result is known — so the AUC measures how early
the score separates those who will pass from those who will fail.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--oulad", type=Path, required=True)
    parser.add_argument("--retail", type=Path, required=True)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    db_name = f"expansion_real_{os.getpid()}"
    db_url = urlunsplit(urlsplit(args.pg)._replace(path=f"/{db_name}"))
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    os.environ.update(DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="expansion.settings")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        oulad(args.oulad)
        retail(args.retail)
        connections.close_all()
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def oulad(path: Path) -> None:
    from scipy.stats import mannwhitneyu

    from learners.models import Course, EnrollmentScore, Learner
    from learners.oulad import oulad_import, presentation_start
    from learners.scoring import score_learners

    counts = oulad_import(path=path)
    print(
        f"OULAD: {counts.courses} presentations, {counts.learners} learners, "
        f"{counts.enrollments} enrollments, {counts.events_new} events"
    )
    results = {
        (learner_id, course): result
        for learner_id, attributes in Learner.objects.values_list("id", "attributes")
        for course, result in attributes.get("final_results", {}).items()
    }
    lengths = {}
    with (path / "courses.csv").open() as handle:
        next(handle)
        for line in handle:
            module, presentation, length = line.strip().split(",")
            lengths[f"oulad-{module}-{presentation}"] = int(length)
    scored: list[tuple[float, str, str]] = []
    for course in Course.objects.order_by("external_id"):
        code = course.external_id.split("-")[-1]
        as_of = presentation_start(code) + timedelta(days=lengths[course.external_id] * 2 // 3)
        score_learners(as_of=as_of, full=True)
        for learner_id, lps, band in EnrollmentScore.objects.filter(course=course).values_list(
            "learner_id", "lps", "band"
        ):
            scored.append((lps, band, results[(learner_id, course.external_id)]))
    table: dict[str, Counter] = defaultdict(Counter)
    for _, band, result in scored:
        table[band][result] += 1
    print("\nLPS band   n      Distinction  Pass    Fail")
    for band in ("high", "mid", "low"):
        row = table[band]
        n = sum(row.values())
        shares = [100 * row[r] / n if n else 0 for r in ("Distinction", "Pass", "Fail")]
        print(f"{band:<9}  {n:<5}  {shares[0]:>10.1f}%  {shares[1]:>5.1f}%  {shares[2]:>5.1f}%")
    passed = [lps for lps, _, result in scored if result in ("Pass", "Distinction")]
    failed = [lps for lps, _, result in scored if result == "Fail"]
    u = mannwhitneyu(passed, failed, alternative="two-sided").statistic
    auc = u / (len(passed) * len(failed))
    print(
        f"\nAUC of enrollment LPS (at 2/3 of the presentation) for Pass-or-Distinction vs Fail: "
        f"{auc:.3f} (n = {len(passed)} vs {len(failed)})"
    )


def retail(path: Path) -> None:
    from django.db.models import Count, Max

    from expansion.commerce.models import Order
    from expansion.commerce.retail import retail_import
    from learners.models import LearnerScore
    from learners.scoring import score_learners

    counts = retail_import(path=path)
    print(f"\nRetail: {counts.customers} customers, {counts.orders_created} orders")
    last = Order.objects.aggregate(last=Max("placed_at"))["last"]
    result = score_learners(as_of=last + timedelta(days=1), full=True)
    print(f"RFM quintile bounds: {result.run.rfm_thresholds}")
    rows = (
        LearnerScore.objects.filter(learner__external_id__startswith="retail-")
        .values("rfm_segment")
        .annotate(n=Count("pk"))
        .order_by("-n")
    )
    total = sum(row["n"] for row in rows)
    print("\nRFM segment                    customers  share")
    for row in rows:
        print(f"{row['rfm_segment'] or '(none)':<30} {row['n']:>9}  {100 * row['n'] / total:5.1f}%")
    cells = (
        LearnerScore.objects.filter(learner__external_id__startswith="retail-")
        .values("rfm_cell")
        .annotate(n=Count("pk"))
        .order_by("-n")[:10]
    )
    print("\nTop cells: " + ", ".join(f"{c['rfm_cell']} {c['n']}" for c in cells))


if __name__ == "__main__":
    main()
