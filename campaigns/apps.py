from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from anymail.signals import tracking

        from .delivery import on_anymail_tracking

        # Provider webhooks (bounces, complaints, deliveries, opens, clicks) → sends and
        # suppressions. Not business flow in a signal: anymail only offers this hook.
        tracking.connect(on_anymail_tracking, dispatch_uid="campaigns.tracking")
