from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .roles import roles_ensure

        # The Marketer and Course creator groups follow the code after every migrate.
        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="campaigns.roles")

        from anymail.signals import tracking

        from .tracking import on_anymail_tracking

        # Provider webhooks (bounces, complaints, deliveries, opens, clicks) → sends and
        # suppressions. Not business flow in a signal: anymail only offers this hook.
        tracking.connect(on_anymail_tracking, dispatch_uid="campaigns.tracking")

        from learners.dirty import events_stored

        from .tasks import evaluation_kick

        # New events: evaluate the triggers soon (learners cannot import campaigns).
        events_stored.connect(evaluation_kick, dispatch_uid="campaigns.evaluation_kick")

        from templates import test_send

        from .test_send import template_test_send

        # The template preview's "Send test" goes through campaigns' delivery.
        test_send.provide(template_test_send)

        from expansion.commerce.sync import orders_synced

        from .attribution import on_orders_synced

        # Orders synced through the API are credited to the sends that led to them.
        orders_synced.connect(on_orders_synced, dispatch_uid="campaigns.attribution")
