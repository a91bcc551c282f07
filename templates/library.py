"""The starter library: the seeds' message templates, ready to adapt (installed by a data
migration; editing them creates new versions)."""

from __future__ import annotations

STYLE = """<style>
  body { font-family: Helvetica, Arial, sans-serif; color: #1f2933; line-height: 1.5; }
  .cta { background: #417690; color: #ffffff; padding: 10px 18px; border-radius: 4px;
         text-decoration: none; display: inline-block; }
  .muted { color: #6b7280; font-size: 12px; }
</style>"""

FOOTER = """<p class="muted">Why you are seeing this: {{ reason }}<br>
{{ company.name }} · {{ company.address }}<br>
<a href="{{ preferences_url }}">Email preferences</a> ·
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>"""


def _html(body: str) -> str:
    return f"<html><head>{STYLE}</head><body>\n{body.strip()}\n{FOOTER}\n</body></html>\n"


STARTERS: list[dict[str, str]] = [
    {
        "name": "Usage-based upsell (80/90/100%)",
        "description": "Seed 002: usage-based upsell email; send at 80, 90 and 100% of quota.",
        "subject": "You're almost at your limit",
        "preheader": "You've used {{ usage.percent | percent }} of your {{ usage.plan }} plan",
        "html_body": _html(
            """
<p>Hi {{ learner.first_name | default: "there" }},</p>
<p>Great news: you've used {{ usage.percent | percent }} of your quota this month
({{ usage.used }} of {{ usage.quota }}). That means you're getting real value.</p>
<p>You're currently on {{ usage.plan }}. {{ offer.positioning }}</p>
<p><a class="cta" href="{{ offer.cta_url }}">Upgrade to {{ offer.product }} for
{{ offer.price | money }}</a></p>
{% if offer.bonus != "" %}<p>Included: {{ offer.bonus }}.</p>{% endif %}
<p>Questions? Just reply.</p>"""
        ),
    },
    {
        "name": "Feature-based upsell",
        "description": "Seed 002: 'Did you know you can …?' after heavy use of a feature.",
        "subject": "Did you know you can do more with {{ offer.product }}?",
        "preheader": "{{ offer.positioning }}",
        "html_body": _html(
            """
<p>Hi {{ learner.first_name | default: "there" }},</p>
<p>I noticed you've been making real progress — {{ receipt.logins_30d }} sessions in the last
30 days. Nice!</p>
<p>{{ offer.positioning }}</p>
<p><a class="cta" href="{{ offer.cta_url }}">Try {{ offer.product }}</a></p>"""
        ),
    },
    {
        "name": "Cross-sell: the next step",
        "description": "Seed 002: cross-sell email 'The next step after [Product]'.",
        "subject": "The next step after {{ course.title }}",
        "preheader": "Based on your progress, you might be ready for {{ offer.product }}",
        "html_body": _html(
            """
<p>Hi {{ learner.first_name | default: "there" }},</p>
<p>You've completed {{ course.modules_completed }} of {{ course.modules_total }}
{{ course.modules_total | pluralize: "module", "modules" }} of {{ course.title }}. Based on
your progress, you might be ready for the next step.</p>
<p>{{ offer.positioning }}</p>
{% if offer.discount_percent > 0 %}<p>As a {{ course.title }} learner, get
{{ offer.discount_percent }}% off: {{ offer.price | money }} instead of
{{ offer.list_price | money }} until {{ offer.expires_at | local_date }}.</p>{% endif %}
{% if offer.bonus != "" %}<p>As a {{ course.title }} learner, {{ offer.product }} comes with
a bonus: {{ offer.bonus }} (until {{ offer.expires_at | local_date }}).</p>{% endif %}
<p><a class="cta" href="{{ offer.cta_url }}">Learn more</a></p>"""
        ),
    },
    {
        "name": "Course-completion cohort upsell",
        "description": "Seed 002, example 2: after course completion, the implementation cohort.",
        "subject": "Congratulations on finishing {{ course.title }}!",
        "preheader": "You've learned the framework. Now let's apply it.",
        "html_body": _html(
            """
<p>Congratulations on finishing {{ course.title }},
{{ learner.first_name | default: "friend" }}!</p>
<p>You've learned the framework. Now let's apply it.</p>
<p>Join {{ offer.product }}:</p>
<ul><li>Weeks of group coaching</li><li>Your questions answered live</li>
<li>Accountability and feedback</li></ul>
{% if offer.saving > 0 %}<p>Course graduates save {{ offer.saving | money }}.</p>{% endif %}
{% if offer.bonus != "" %}<p>Graduates also get {{ offer.bonus }}.</p>{% endif %}
<p><a class="cta" href="{{ offer.cta_url }}">Apply now</a></p>"""
        ),
    },
    {
        "name": "Stall recovery: pick up where you left off",
        "description": "Seed 000: a stalled learner; the next module first, what comes next after.",
        "subject": "Pick up where you left off in {{ course.title }}",
        "preheader": "Next up: {{ course.next_module | default: 'your next module' }}",
        "category": "learning",
        "html_body": _html(
            """
<p>Hi {{ learner.first_name | default: "there" }},</p>
<p>You were on a roll in {{ course.title }}: {{ course.progress | percent }} done.
{% if course.next_module != "" %}Next up is <strong>{{ course.next_module }}</strong> — about
20 minutes.{% endif %}</p>
<p><a class="cta" href="{{ course.url | default: offer.cta_url }}">Continue the course</a></p>
<p>When you finish, {{ offer.product }} is what comes next.</p>"""
        ),
    },
    {
        "name": "Assessment milestone: unlock advanced content",
        "description": "Seed 000: an assessment score of 80%+ mid-course.",
        "subject": "You averaged {{ receipt.average_score_30d | default: 80 }}: "
        "advanced content is unlocked",
        "preheader": "{{ offer.positioning }}",
        "html_body": _html(
            """
<p>Hi {{ learner.first_name | default: "there" }},</p>
<p>Your assessments in the last 30 days average {{ receipt.average_score_30d | default: "80+" }}.
You're ready for more depth.</p>
<p>{{ offer.positioning }}</p>
<p><a class="cta" href="{{ offer.cta_url }}">Unlock {{ offer.product }}</a></p>"""
        ),
    },
    {
        "name": "Renewal right-sizing",
        "description": "Seed 003: 60–90 days before renewal, a value review and the right size.",
        "subject": "Your renewal is coming up — here's what you got from it lately",
        "preheader": "A value review before you renew",
        "html_body": _html(
            """
<p>Hi {{ learner.first_name | default: "there" }},</p>
<p>Past 30 days: {{ receipt.modules_completed_30d }}
{{ receipt.modules_completed_30d | pluralize: "module", "modules" }} completed,
{{ receipt.assessments_30d }} {{ receipt.assessments_30d | pluralize: "assessment", "assessments" }}
submitted.</p>
<p>{{ offer.positioning }}</p>
<p><a class="cta" href="{{ offer.cta_url }}">Review {{ offer.product }} for
{{ offer.price | money }}</a></p>"""
        ),
    },
    {
        "name": "Post-purchase one-click upsell",
        "description": "Seed 001: the one logical next item right after purchase.",
        "subject": "One more thing for your {{ course.title | default: 'purchase' }}",
        "preheader": "{{ offer.positioning }}",
        "html_body": _html(
            """
<p>Thanks for your purchase, {{ learner.first_name | default: "friend" }}!</p>
<p>{{ offer.positioning }}</p>
<p><a class="cta" href="{{ offer.cta_url }}">Add {{ offer.product }} in one click —
{{ offer.price | money }}</a></p>
<p>Offer open until {{ offer.expires_at | local_date }}.</p>"""
        ),
    },
    {
        "name": "Post-purchase downsell",
        "description": "Seed 001: shown when the one-click upsell is declined.",
        "subject": "A lighter option: {{ offer.product }}",
        "preheader": "{{ offer.positioning }}",
        "html_body": _html(
            """
<p>No problem, {{ learner.first_name | default: "friend" }}.</p>
<p>If the full program is more than you need right now, {{ offer.product }} gets you most of
the way for {{ offer.price | money }}.</p>
<p><a class="cta" href="{{ offer.cta_url }}">Choose {{ offer.product }}</a></p>"""
        ),
    },
]
