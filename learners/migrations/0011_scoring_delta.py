from django.db import migrations, models

from expansion.core.db.migration_ops import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("learners", "0010_emailsuppression_categoryoptout_consentchange"),
    ]

    operations = [
        migrations.AddField(
            model_name="scoringrun",
            name="fingerprint",
            field=models.CharField(
                blank=True, help_text="The model and RFM map the pass used.", max_length=32
            ),
        ),
        migrations.AlterField(
            model_name="scoringrun",
            name="kind",
            field=models.CharField(
                choices=[
                    ("full", "Full, from scratch"),
                    ("delta", "Delta (everyone whose inputs changed)"),
                    ("incremental", "Incremental (dirty learners)"),
                ],
                max_length=12,
            ),
        ),
        AddIndexOnline(
            model_name="event",
            index=models.Index(
                fields=["occurred_at"], include=("learner", "kind"), name="event_time_idx"
            ),
        ),
    ]
