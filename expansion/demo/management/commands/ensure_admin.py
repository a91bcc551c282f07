"""Create the first admin login and print its password once; later runs say it exists. Course
creators without a password yet (the demo's) get one too, printed once."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from campaigns.roles import COURSE_CREATOR


class Command(BaseCommand):
    help = "Create an admin superuser with a random password, printed once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@localhost")

    def handle(self, *args, username: str, email: str, **options) -> None:
        self._admin(username, email)
        self._creators()

    def _creators(self) -> None:
        users = get_user_model()
        waiting = users.objects.filter(
            groups__name=COURSE_CREATOR, is_active=True, password__startswith="!"
        ).order_by("username")
        for user in waiting:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(
                self.style.SUCCESS(
                    f"Course creator login: {user.username} / {password} "
                    "(reviews the campaigns of their own courses only)"
                )
            )

    def _admin(self, username: str, email: str) -> None:
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(
                f"Admin login '{username}' already exists (its password was printed when it was "
                f"created; reset it with: python manage.py changepassword {username})."
            )
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin login created: {username} / {password}"))
        self.stdout.write("This password is shown once and not stored in clear anywhere.")
