"""Open the MRR ledger for subscriptions that existed before it: a change at the start, and
one at the cancellation for cancelled ones (when it was last updated if the
cancellation time is missing). Mirrors ``expansion.commerce.sync.subscription_changes_backfill``."""

from decimal import Decimal

from django.db import migrations

CONTRIBUTING = ("active", "past_due")


def forward(apps, schema_editor):
    Subscription = apps.get_model("expansion", "Subscription")
    SubscriptionChange = apps.get_model("expansion", "SubscriptionChange")
    changes = []
    for sub in Subscription.objects.filter(mrr__gt=0).iterator(chunk_size=2000):
        if sub.status not in (*CONTRIBUTING, "cancelled"):
            continue
        holder = {"learner_id": sub.learner_id, "account_id": sub.account_id}
        changes.append(
            SubscriptionChange(
                subscription_id=sub.id,
                effective_at=sub.started_at,
                mrr_before=Decimal("0.00"),
                mrr_after=sub.mrr,
                **holder,
            )
        )
        if sub.status == "cancelled":
            changes.append(
                SubscriptionChange(
                    subscription_id=sub.id,
                    effective_at=sub.cancelled_at or sub.updated_at,
                    mrr_before=sub.mrr,
                    mrr_after=Decimal("0.00"),
                    **holder,
                )
            )
    SubscriptionChange.objects.bulk_create(changes, batch_size=2000)


class Migration(migrations.Migration):
    dependencies = [("expansion", "0002_offers_tiers_bundles_affinity_mrr")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
