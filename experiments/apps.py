from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from .assignment import sqlite_functions

        # SQLite has no md5(): the bucket function is registered on each connection.
        connection_created.connect(sqlite_functions, dispatch_uid="experiments.sqlite_functions")
