"""The seeds' defaults: scoring model v1 (seed 000 weights, bands; seed 003 stages) and
seed 001's RFM Segment-to-Offer map."""

from django.db import migrations

RFM_SEGMENTS = [
    # name, priority, r, f, m ranges, move, do_not_pitch
    ("Champions", 10, (5, 5), (5, 5), (5, 5),
     "Best expansion offer: premium tier, cohort or coaching; anchor high, add value, no discount.",
     False),
    ("Loyal high-spenders", 20, (4, 5), (4, 5), (5, 5),
     "Best offer: the next tier or a bundle that rewards their loyalty.", False),
    ("Promising newcomers", 30, (5, 5), (1, 2), (1, 2),
     "Best low-risk offer: a small add-on or the next course, with a guarantee.", False),
    ("Steady mid-value", 40, (3, 3), (3, 3), (3, 3),
     "Best offer: a cross-sell that fits their last purchase.", False),
    ("At-risk previously valuable", 50, (1, 1), (4, 5), (4, 5),
     "Action before any offer: re-engage and reinforce value; do not pitch.", True),
    ("Recently churned", 60, (1, 1), (1, 1), (1, 5),
     "Explicit suppression: no expansion offers.", True),
    ("Everyone else", 1000, (1, 5), (1, 5), (1, 5),
     "Standard offer for their journey moment; review this cell's size regularly.", False),
]


def forward(apps, schema_editor):
    ScoringModel = apps.get_model("learners", "ScoringModel")
    RfmSegment = apps.get_model("learners", "RfmSegment")
    if not ScoringModel.objects.exists():
        ScoringModel.objects.create(
            version=1, is_active=True, note="Defaults from the seeds (000, 001, 003)."
        )
    for name, priority, r, f, m, move, do_not_pitch in RFM_SEGMENTS:
        RfmSegment.objects.get_or_create(
            name=name,
            defaults={
                "priority": priority,
                "r_min": r[0], "r_max": r[1],
                "f_min": f[0], "f_max": f[1],
                "m_min": m[0], "m_max": m[1],
                "move": move,
                "do_not_pitch": do_not_pitch,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("learners", "0002_scoring_and_segments")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
