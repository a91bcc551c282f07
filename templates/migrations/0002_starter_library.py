"""Install the starter library (templates.library) with a first version each."""

from django.db import migrations


def forward(apps, schema_editor):
    from templates.library import STARTERS
    from templates.messages import compile_content

    MessageTemplate = apps.get_model("message_templates", "MessageTemplate")
    MessageTemplateVersion = apps.get_model("message_templates", "MessageTemplateVersion")
    for starter in STARTERS:
        template, created = MessageTemplate.objects.get_or_create(
            name=starter["name"],
            defaults={
                "description": starter["description"],
                "category": starter.get("category", "offers"),
                "subject": starter["subject"],
                "preheader": starter["preheader"],
                "html_body": starter["html_body"],
            },
        )
        if created:
            MessageTemplateVersion.objects.create(
                template=template,
                number=1,
                channel=template.channel,
                category=template.category,
                content={template.locale: compile_content(starter)},
                default_locale=template.locale,
            )


class Migration(migrations.Migration):
    dependencies = [("message_templates", "0001_message_templates")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
