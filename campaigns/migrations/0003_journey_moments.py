"""The journey moments of seeds 001, 003 and 004, some deliberately kept offer-free."""

from django.db import migrations

MOMENTS = [
    ("product_page", "Product page", "Browsing a product or pricing page.", True),
    ("checkout", "Cart / checkout", "Order bump at checkout (seed 001).", True),
    ("post_purchase", "Post-purchase thank-you", "One-click upsell right after buying.", True),
    ("onboarding", "Onboarding", "First win in the first 30 days: gentle exposure only.", True),
    (
        "milestone",
        "Usage or value milestone",
        "Approaching a limit, a recurring success, a value receipt.",
        True,
    ),
    ("course_completion", "Course completion", "The final module or the certificate.", True),
    ("renewal", "Renewal, 60–90 days out", "Rightsizing and bundle offers before renewal.", True),
    ("support_resolution", "Support resolved", "After a resolved ticket or incident.", True),
    ("support_open", "Support ticket open", "Never upsell mid-ticket (seed 003).", False),
    (
        "billing_problem",
        "Billing problem",
        "Failed payment or billing dispute: no offers (seed 003).",
        False,
    ),
    ("outage", "Outage or unresolved bug", "Don't monetise pain (seed 004).", False),
    ("at_risk", "Declining engagement", "Re-engage, never upsell (seed 003).", False),
]


def seed(apps, schema_editor):
    JourneyMoment = apps.get_model("campaigns", "JourneyMoment")
    for position, (slug, name, description, allowed) in enumerate(MOMENTS, start=1):
        JourneyMoment.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "offers_allowed": allowed,
                "position": position * 10,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0002_campaign_engine")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
