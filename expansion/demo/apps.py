from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data and its commands (``seed_demo``, ``ensure_admin``); no models. The only
    package allowed to build rows with ``tests.factories``."""

    name = "expansion.demo"
    label = "demo"
    verbose_name = "Demo"
