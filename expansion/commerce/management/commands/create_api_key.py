from django.core.management.base import BaseCommand, CommandError

from expansion.commerce.apikeys import api_key_issue
from expansion.commerce.models import ApiScope


class Command(BaseCommand):
    help = "Issue an API key and print it once (only its digest is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Who uses the key, e.g. 'LMS sync'.")
        parser.add_argument(
            "--scope", action="append", choices=ApiScope.values, dest="scopes", default=None
        )
        parser.add_argument("--quiet", action="store_true", help="Print the key alone.")

    def handle(self, *args, name: str, scopes: list[str] | None, quiet: bool, **options) -> None:
        try:
            issued = api_key_issue(name=name, scopes=scopes or [ApiScope.READ])
        except ValueError as error:
            raise CommandError(str(error)) from None
        if quiet:
            self.stdout.write(issued.raw_key)
            return
        self.stdout.write(f"API key for {name} ({', '.join(issued.api_key.scopes)}):")
        self.stdout.write(issued.raw_key)
        self.stdout.write("Shown once; store it in the client's secret store.")
