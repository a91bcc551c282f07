"""DirtyLearner becomes an append-only log (no unique key per learner).

Recreated rather than altered: its rows are transient (a learner whose row is lost here is
rescored by the next full pass), and swapping the primary key in place is fragile.
"""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("learners", "0007_enrollmentscore_indexes")]

    operations = [
        migrations.DeleteModel(name="DirtyLearner"),
        migrations.CreateModel(
            name="DirtyLearner",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "marked_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                (
                    "learner",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="learners.learner",
                    ),
                ),
            ],
        ),
    ]
