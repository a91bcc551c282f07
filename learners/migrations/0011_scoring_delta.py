from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexOnline(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL (ingestion keeps writing to a large events
    table while the index builds); a plain CREATE INDEX elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_forwards(
            self, app_label, schema_editor, from_state, to_state
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_backwards(
            self, app_label, schema_editor, from_state, to_state
        )


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
