from django.db import migrations, models

from expansion.core.db.migration_ops import AddIndexOnline, RemoveIndexOnline


class Migration(migrations.Migration):
    # The send table is large and dispatch keeps writing: indexes built and dropped
    # concurrently on PostgreSQL (the status index goes with the field's db_index).
    atomic = False

    dependencies = [
        ('campaigns', '0006_candidate_scratch'),
        ('expansion', '0004_orderline_refunded_index'),
        ('experiments', '0002_scheduled_analysis'),
        ('learners', '0013_scorehistory_fillfactor'),
        ('message_templates', '0002_starter_library'),
    ]

    operations = [
        AddIndexOnline(
            model_name='send',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['scheduled_for', 'id'], name='send_due_order_idx'),
        ),
        AddIndexOnline(
            model_name='send',
            index=models.Index(condition=models.Q(('status', 'sending')), fields=['claimed_at'], name='send_sending_idx'),
        ),
        RemoveIndexOnline(
            model_name='send',
            name='send_due_idx',
        ),
        migrations.AlterField(
            model_name='send',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('delivered', 'Delivered'), ('opened', 'Opened'), ('clicked', 'Clicked'), ('converted', 'Converted'), ('failed', 'Failed'), ('suppressed', 'Suppressed'), ('dismissed', 'Dismissed (in-app)')], default='queued', max_length=12),
        ),
    ]
