"""The sandboxed Liquid engine, template checks, versions and the admin around them."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from liquid import Environment, Markup

from templates import engine
from templates.context import KNOWN, Receipt, message_context
from templates.library import STARTERS
from templates.messages import compile_content, content_check, message_render, template_snapshot
from templates.models import MessageTemplate, MessageTemplateVersion
from tests.factories.learners import LearnerFactory, UserFactory
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVariantFactory


def render(source: str, html: bool = True, **context) -> str:
    return engine.render(source, context, html=html)


def test_filters_money_percent_plural_and_local_dates():
    assert render("{{ p | money }}", p=Decimal("1234.5")) == "$1,234.50"
    assert render("{{ p | money }}", p=99) == "$99"
    assert render('{{ p | money: "EUR" }}', p="-3.456") == "-€3.46"
    assert render('{{ p | money: "CHF" }}', p=10) == "10 CHF"
    assert render("{{ s | percent }} {{ s | percent: 1 }}", s=0.8) == "80% 80.0%"
    assert render('{{ n }} {{ n | pluralize: "module", "modules" }}', n=1) == "1 module"
    assert render('{{ n | pluralize: "module" }}', n=3) == "modules"
    moment = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)
    context = {"t": moment, "learner": {"time_zone": "Asia/Tokyo"}}
    # 23:30 UTC on 29 March is 08:30 on the 30th in Tokyo.
    assert engine.render('{{ t | local_date: "%Y-%m-%d %H:%M" }}', context) == "2026-03-30 08:30"
    context["learner"] = {"time_zone": "Europe/London"}  # BST started that morning
    assert engine.render('{{ t | local_date: "%H:%M" }}', context) == "00:30"


def test_values_are_escaped_in_html_and_not_in_text():
    assert render("<p>{{ n }}</p>", n="<b>Ann & Bob</b>") == (
        "<p>&lt;b&gt;Ann &amp; Bob&lt;/b&gt;</p>"
    )
    assert render("{{ n }}", html=False, n="Ann & Bob") == "Ann & Bob"
    # Every kind of value is escaped exactly as python-liquid's own autoescape does (the HTML
    # environment escapes plain strings by a shorter path).
    source = "{{ s }}|{{ s | upcase }}|{{ m }}|{{ 'a<b' }}|{{ l }}|{{ x }}|{{ b }}|{{ r }}|{{ t }}"
    values = {
        "s": "<a href='x' title=\"y\">&amp;</a>",
        "m": Markup("<b>kept</b>"),
        "l": ["<", Markup("<i>"), 1],
        "x": None,
        "b": True,
        "r": range(1, 3),
        "t": 2.5,
    }
    expected = Environment(autoescape=True).from_string(source).render(**values)
    assert render(source, **values) == expected
    assert expected.startswith("&lt;a href=&#39;x&#39; title=&#34;y&#34;&gt;&amp;amp;&lt;/a&gt;|")


def test_undefined_is_an_error_with_its_place_unless_defaulted():
    with pytest.raises(engine.RenderError, match="'learner' is undefined at line 2, column 4"):
        render("Hi\n{{ learner.first_name }}")
    assert render('{{ learner.first_name | default: "there" }}') == "there"


def test_the_sandbox_bounds_loops_output_and_files():
    with pytest.raises(engine.RenderError, match="loop iteration limit reached"):
        render("{% for i in (1..5000) %}x{% endfor %}")
    with pytest.raises(engine.RenderError, match="output stream limit reached"):
        render("{% for i in (1..900) %}{{ s }}{% endfor %}", s="x" * 1000)
    # Without loops or amplifying filters the limit is checked on the finished output.
    assert engine.compiled("{{ s | upcase }}{% if s %}!{% endif %}", True).linear is True
    assert engine.compiled("{{ s | replace: 'x', s }}", True).linear is False
    assert engine.compiled("{% assign t = s %}{{ t }}", True).linear is False
    assert render("{{ s }}", s="x" * 500_000) == "x" * 500_000
    with pytest.raises(engine.RenderError, match="output stream limit reached"):
        render("{{ s }}{{ s }}", s="x" * 300_000)
    with pytest.raises(
        engine.RenderError,
        match="replace: the result would be 1,000,000 characters long",  # refused before
    ):
        render("{{ s | replace: 'x', s }}", s="x" * 1000)
    with pytest.raises(
        engine.RenderError,
        match=r"^'include' is not allowed: templates cannot include other templates or files "
        "at line 1, column 4$",
    ):
        render("{% include '/etc/passwd' %}")
    with pytest.raises(
        engine.RenderError, match=r"^'render' is not allowed: .* at line 1, column 4$"
    ):
        render("{% render 'settings.py' %}")
    errors, _ = engine.check("html_body", "<p>\n {% include 'x' %}", known=KNOWN)
    assert [str(e) for e in errors] == [
        "html_body: line 2, column 5: 'include' is not allowed: templates cannot include other "
        "templates or files"
    ]


def test_check_gives_line_and_column_and_warns_unknown_variables():
    errors, warnings = engine.check("html_body", "<p>\n{% if x %}\nhello", known=KNOWN)
    assert [(e.field, e.line) for e in errors] == [("html_body", 3)]
    assert "endif" in errors[0].message
    errors, warnings = engine.check(
        "subject", "Hi {{ learner.name }} {{ lerner.name | upcase }} {{ x | shout }}", known=KNOWN
    )
    assert [str(e) for e in errors] == ["subject: line 1, column 57: unknown filter 'shout'"]
    assert [str(w) for w in warnings] == [
        "subject: line 1, column 26: unknown variable 'lerner'",
        "subject: line 1, column 53: unknown variable 'x'",
    ]


def test_a_marketing_email_needs_an_unsubscribe_link_and_a_subject():
    content = {"subject": "", "html_body": "<p>Hi</p>"}
    check = content_check(content=content, channel="email", marketing=True)
    assert [str(e) for e in check.errors] == [
        "subject: an email needs a subject",
        "html_body: a marketing email must link {{ unsubscribe_url }} (one-click unsubscribe)",
    ]
    content = {"subject": "Receipt", "html_body": "<p>Hi</p>"}
    assert content_check(content=content, channel="email", marketing=False).errors == []
    assert content_check(content=content, channel="in_app", marketing=True).errors == []


def test_css_is_inlined_once_and_liquid_survives_it():
    html = (
        "<html><head><style>.cta{color:red}</style></head><body><table>"
        '{% for m in ms %}<tr><td class="cta">{{ m }}</td></tr>{% endfor %}'
        '</table><a class="cta" href="{{ url }}">Go</a></body></html>'
    )
    compiled = engine.inline_css(html)
    assert "<style" not in compiled
    assert '<a class="cta" href="{{ url }}" style="color: red;">Go</a>' in compiled
    out = render(compiled, ms=["a", "b"], url="https://x.example/?a=1&b=2")
    assert out.count('style="color: red;"') == 3
    assert ">a</td>" in out
    assert ">b</td>" in out
    assert 'href="https://x.example/?a=1&amp;b=2"' in out


def test_text_is_generated_from_the_html():
    html = (
        "<html><head><style>p{}</style></head><body><p>Hi {{ learner.first_name }},\n"
        "welcome.</p><ul><li>One</li><li>Two</li></ul>"
        '<p><a href="{{ offer.cta_url }}">Apply now</a></p></body></html>'
    )
    assert engine.text_from_html(html) == (
        "Hi {{ learner.first_name }}, welcome.\n\n- One\n- Two\n\nApply now ({{ offer.cta_url }})\n"
    )


@pytest.mark.django_db
def test_versions_are_snapshots_made_only_on_change():
    template = MessageTemplateFactory(subject="Hello {{ learner.first_name }}")
    first = template_snapshot(template=template)
    assert first.number == 1
    assert template_snapshot(template=template) == first
    MessageTemplateVariantFactory(template=template, locale="de", subject="Hallo")
    second = template_snapshot(template=template)
    assert (second.number, sorted(second.content)) == (2, ["de", "en"])
    template.subject = "Hi {{ learner.first_name }}"
    template.save()
    third = template_snapshot(template=template)
    assert third.number == 3
    # The old versions are untouched.
    assert MessageTemplateVersion.objects.get(pk=first.pk).content["en"]["subject"] == (
        "Hello {{ learner.first_name }}"
    )
    learner = LearnerFactory(name="Ana Lima", locale="de-AT")
    rendered = message_render(version=second, context=message_context(learner=learner))
    assert (rendered.subject, rendered.locale) == ("Hallo", "de")
    learner.locale = "fr"
    rendered = message_render(version=third, context=message_context(learner=learner))
    assert rendered.subject == "Hi Ana"


@pytest.mark.django_db
def test_every_starter_template_is_installed_and_renders():
    assert set(MessageTemplate.objects.values_list("name", flat=True)) >= {
        s["name"] for s in STARTERS
    }
    assert len(STARTERS) == 9
    learner = LearnerFactory(name="Ana Lima", time_zone="Asia/Tokyo")
    context = message_context(
        learner=learner,
        course={
            "title": "SQL Basics",
            "progress": 0.5,
            "modules_completed": 4,
            "modules_total": 8,
            "next_module": "Joins",
            "url": "",
        },
        offer={
            "name": "Next",
            "product": "SQL Intermediate",
            "price": Decimal("104.30"),
            "list_price": Decimal("149.00"),
            "discount_percent": 30,
            "saving": Decimal("44.70"),
            "bonus": "",
            "expires_at": datetime(2026, 5, 1, 15, tzinfo=UTC),
            "cta_url": "https://learn.example.org/next",
            "positioning": "The next step.",
        },
        usage={"percent": 0.9, "used": 900, "quota": 1000, "plan": "Basic"},
        receipt=Receipt(3, 2, 86.5, 12),
        reason="Completed SQL Basics.",
        unsubscribe_url="https://t.example/u",
        preferences_url="https://t.example/p",
    )
    for version in MessageTemplateVersion.objects.filter(number=1):
        rendered = message_render(version=version, context=context)
        assert "https://t.example/u" in rendered.html, version
        assert "https://t.example/u" in rendered.text, version
        assert rendered.subject, version
        assert "{{" not in rendered.html + rendered.text, version
    cross = MessageTemplateVersion.objects.get(template__name="Cross-sell: the next step")
    text = message_render(version=cross, context=context).text
    assert "get 30% off: $104.30 instead of $149 until 2 May 2026, 00:00." in text


@pytest.fixture
def marketer(client, db):
    client.force_login(UserFactory(username="copywriter", is_staff=True, is_superuser=True))
    return client


def template_post(**changes) -> dict:
    data = {
        "name": "Welcome",
        "channel": "email",
        "category": "offers",
        "description": "",
        "is_active": "on",
        "locale": "en",
        "subject": "Hi {{ learner.first_name }}",
        "preheader": "",
        "html_body": '<p>Hi</p>\n<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        "text_body": "",
        "variants-TOTAL_FORMS": "0",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }
    return data | changes


def test_admin_refuses_a_broken_template_with_its_line(marketer):
    before = MessageTemplate.objects.count()
    response = marketer.post(
        "/admin/message_templates/messagetemplate/add/",
        template_post(html_body="<p>Hi</p>\n{% if learner %}\n{{ unsubscribe_url }}"),
    )
    assert response.status_code == 200
    assert "html_body: line 3" in response.content.decode()
    assert MessageTemplate.objects.count() == before

    response = marketer.post(
        "/admin/message_templates/messagetemplate/add/", template_post(), follow=True
    )
    page = response.content.decode()
    assert "Saved as version 1." in page
    template = MessageTemplate.objects.get(name="Welcome")
    assert template.versions.count() == 1


def test_admin_preview_test_send_and_compare(marketer):
    LearnerFactory(external_id="ana", name="Ana Lima")
    template = MessageTemplateFactory()
    template_snapshot(template=template)
    url = f"/admin/message_templates/messagetemplate/{template.pk}/preview/?learner=ana"
    page = marketer.get(url).content.decode()
    assert "<strong>Hello Ana</strong>" in page
    assert 'sandbox=""' in page
    marketer.post(url, {"learner": "ana", "to": "not an address"})
    assert mail.outbox == []
    marketer.post(url, {"learner": "ana", "to": "me@example.org"})
    (sent,) = mail.outbox
    assert (sent.subject, sent.to) == ("[TEST] Hello Ana", ["me@example.org"])
    assert sent.alternatives[0][1] == "text/html"
    assert sent.extra_headers["Message-ID"].endswith("@expansion.localhost>")

    template.subject = "Howdy {{ learner.first_name }}"
    template.save()
    template_snapshot(template=template)
    compare = f"/admin/message_templates/messagetemplate/{template.pk}/compare/?a=1&b=2"
    page = marketer.get(compare).content.decode()
    assert "[en] subject" in page
    assert 'Ho<span class="diff_add">wdy</span>' in page
    assert marketer.get(compare.replace("b=2", "b=9")).status_code == 404
    assert marketer.get(compare.replace("b=2", "b=x")).status_code == 400


def test_compiled_content_keeps_sources_and_compiled_forms():
    content = compile_content({"subject": "S", "html_body": "<p>A</p>"})
    assert content == {
        "subject": "S",
        "preheader": "",
        "html": "<p>A</p>",
        "text": "",
        "html_compiled": "<p>A</p>",
        "text_compiled": "A\n",
    }
