from django.apps import AppConfig


class LearnersConfig(AppConfig):
    name = "learners"
    verbose_name = "Learners"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created  # noqa: PLC0415

        from expansion.core.db.timestamps import timestamps_fast  # noqa: PLC0415

        from . import signals  # noqa: F401 - connects the receivers

        connection_created.connect(timestamps_fast, dispatch_uid="expansion-timestamps-fast")
