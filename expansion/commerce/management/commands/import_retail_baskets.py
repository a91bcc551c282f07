from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from expansion.commerce.affinity import affinity_refresh
from expansion.commerce.retail import retail_baskets_import


class Command(BaseCommand):
    help = "Import UCI Online Retail baskets (one basket a line, stock codes) and refresh affinity."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="online_retail_baskets.csv")
        parser.add_argument(
            "--placed-at",
            default=None,
            help="When the baskets were bought (ISO 8601 with zone); default: now. The file has "
            "no dates, and affinity only reads orders within its window.",
        )

    def handle(self, *args, path: Path, placed_at: str | None, **options) -> None:
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        placed_at = placed_at or timezone.now().replace(microsecond=0).isoformat()
        counts = retail_baskets_import(path=path, placed_at=placed_at)
        for error in counts.errors[:20]:
            self.stderr.write(f"refused: {error}")
        result = affinity_refresh()
        self.stdout.write(
            self.style.SUCCESS(
                f"Baskets: {counts.products} products, {counts.orders_created} new orders, "
                f"{counts.orders_updated} updated, {counts.skipped} empty lines skipped, "
                f"{len(counts.errors)} refused; affinity: {result.pairs} pairs from "
                f"{result.orders} orders."
            )
        )
        if counts.errors:
            raise SystemExit(1)
