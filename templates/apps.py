from django.apps import AppConfig


class MessageTemplatesConfig(AppConfig):
    name = "templates"
    label = "message_templates"
    verbose_name = "Message templates"
    default_auto_field = "django.db.models.BigAutoField"
