from django.db import migrations


def fillfactor(apps, schema_editor):
    """Leave 30 % of each history page free, so that the day's row, rewritten by every
    scoring pass that changes the learner, is updated in place (a HOT update, no new index
    entry). History rows are written day by day, so new pages take this at once."""
    schema_editor.execute("ALTER TABLE learners_scorehistory SET (fillfactor = 70)")


def reset(apps, schema_editor):
    schema_editor.execute("ALTER TABLE learners_scorehistory RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("learners", "0012_scorehistory_learner_index")]

    operations = [migrations.RunPython(fillfactor, reset)]
