from django.apps import AppConfig


class ExpansionConfig(AppConfig):
    name = "expansion"
    verbose_name = "Commerce"
    default_auto_field = "django.db.models.BigAutoField"
