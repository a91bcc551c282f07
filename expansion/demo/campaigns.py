"""The demo's campaigns (their templates snapshotted): four active, one draft to preview."""

from __future__ import annotations

from campaigns.models import Campaign, JourneyMoment
from expansion.commerce.models import Offer, Product
from experiments.models import Experiment
from learners.models import Course
from templates.messages import template_snapshot
from templates.models import MessageTemplate


def demo_campaigns() -> None:
    """The demo's campaigns: the experiment's cross-sell email, an in-app card after a strong
    assessment, the stall re-engagement email and the teams' usage band (active), and a
    renewal email still in draft, to preview."""
    moment = {m.slug: m for m in JourneyMoment.objects.all()}
    email = MessageTemplate.objects.get(name="Cross-sell: the next step")
    template_snapshot(template=email)
    renewal = MessageTemplate.objects.get(name="Renewal right-sizing")
    template_snapshot(template=renewal)
    card = MessageTemplate.objects.create(
        name="Next step card",
        channel="in_app",
        subject="Ready for {{ offer.product }}?",
        html_body="<p>{{ reason }}.</p><p>{{ offer.positioning }}</p>",
        text_body="{{ reason }}. {{ offer.positioning }}",
    )
    template_snapshot(template=card)
    offer = Offer.objects.get(name="Next course in the path")
    # The offer is SQL Intermediate: its campaigns are about SQL Basics (the course's creator
    # reviews them), so a Copywriting graduate is not offered the SQL path.
    sql_basics = Course.objects.get(title="SQL Basics")
    Campaign.objects.create(
        name="Graduates: the next course",
        course=sql_basics,
        description="Seed 000: cross-sell the next course 2–4 weeks after a completion.",
        moment=moment["course_completion"],
        trigger="cross_sell",
        email_template=email,
        offer=offer,
        experiment=Experiment.objects.get(name="Next course: 30% off or a bonus?"),
        priority=120,
        status="active",
        requires_creator_approval=False,
    )
    Campaign.objects.create(
        name="Strong assessment: next step card",
        course=sql_basics,
        moment=moment["milestone"],
        trigger="assessment_high",
        trigger_params={"min_score": 85},
        send_within_hours=24 * 7,
        in_app_template=card,
        offer=offer,
        status="active",
        requires_creator_approval=False,
    )
    # One waiting for its course's creator (creator_ana signs in to approve or send it back).
    Campaign.objects.create(
        name="SQL Basics graduates: the next course by email, at completion",
        course=sql_basics,
        description="Right at completion rather than weeks after: waits for SQL Basics' "
        "creator to approve what goes out.",
        moment=moment["course_completion"],
        trigger="final_module",
        email_template=email,
        offer=offer,
        priority=110,
        status="in_review",
        requires_creator_approval=True,
    )
    # Seed 000's stall play: re-engagement (the upsell guardrails — at risk, low LPS — do not
    # stop it), at the "declining engagement" moment that is kept free of offers.
    stall = MessageTemplate.objects.get(name="Stall recovery: pick up where you left off")
    template_snapshot(template=stall)
    Campaign.objects.create(
        name="Stalled learners: pick up where you left off",
        description="Seed 000: was active weekly, silent for 10 days: pick up where you left "
        "off + here's what comes next.",
        moment=moment["at_risk"],
        trigger="stall",
        purpose="reengagement",
        category="learning",
        email_template=stall,
        offer=Offer.objects.get(name="Professional certificate"),
        send_within_hours=24 * 7,
        status="active",
        requires_creator_approval=False,
    )
    # Seed 004's usage band: a team at 70–85 % of its quota (one email per account, to the
    # roles that buy: admin and billing owner).
    usage = MessageTemplate.objects.get(name="Usage-based upsell (80/90/100%)")
    template_snapshot(template=usage)
    seats = Offer.objects.create(
        name="Room to grow: team seat pack",
        kind="upsell",
        product=Product.objects.get(sku="SEATS-5"),
        incentive="none",
        positioning="Add five seats and more room before your team hits the limit.",
        cta_url="https://learn.example.org/team/seats",
        valid_hours=24 * 7,
    )
    Campaign.objects.create(
        name="Teams at 70–85% of their quota",
        description="Seed 004: 70–85% of quota — upgrade before the wall.",
        moment=moment["milestone"],
        trigger="usage_threshold",
        trigger_params={"percent": 70, "upto": 85},
        target_roles=["admin", "billing_owner"],
        # The buyer's own course progress says nothing about the team's need (override).
        guardrails={"min_lps": 0},
        email_template=usage,
        offer=seats,
        send_within_hours=24 * 365,
        status="active",
        requires_creator_approval=False,
    )
    Campaign.objects.create(
        name="Renewal right-sizing",
        moment=moment["renewal"],
        trigger="renewal",
        email_template=renewal,
        # Right-sizing a plan, not a course cross-sell.
        offer=Offer.objects.get(name="Pro for heavy users"),
        status="draft",
        # About a subscription's renewal, not a course: no creator reviews it.
        requires_creator_approval=False,
    )
