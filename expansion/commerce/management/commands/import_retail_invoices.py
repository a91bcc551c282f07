from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from expansion.commerce.retail import retail_import


class Command(BaseCommand):
    help = "Import UCI Online Retail invoices (InvoiceNo, InvoiceDate, CustomerID, TotalPrice)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="online_retail_invoices.csv")

    def handle(self, *args, path: Path, **options) -> None:
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        counts = retail_import(path=path)
        for error in counts.errors[:20]:
            self.stderr.write(f"refused: {error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Retail: {counts.customers} customers, {counts.orders_created} new orders, "
                f"{counts.orders_updated} updated, {counts.skipped} rows skipped, "
                f"{len(counts.errors)} refused."
            )
        )
        if counts.errors:
            raise SystemExit(1)
