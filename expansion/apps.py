from django.apps import AppConfig


class ExpansionConfig(AppConfig):
    name = "expansion"
    verbose_name = "Commerce"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from learners.commerce import provide

        from . import signals  # noqa: F401 - connects the receivers
        from .facts import CommerceFacts

        provide(CommerceFacts())
