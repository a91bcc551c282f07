from django.apps import AppConfig


class ExpansionConfig(AppConfig):
    """The commerce app. Its label stays ``expansion`` (the app's name before issue 19), so its
    tables, migrations, permissions (``expansion.read_api_by_session``) and foreign keys are
    unchanged. It also holds the API keys' model for the same reason."""

    name = "expansion.commerce"
    label = "expansion"
    verbose_name = "Commerce"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from learners.commerce import provide  # noqa: PLC0415 - app registry is ready only now

        from . import signals  # noqa: F401, PLC0415 - connects the receivers
        from .facts import CommerceFacts  # noqa: PLC0415 - models load after the registry

        provide(CommerceFacts())
