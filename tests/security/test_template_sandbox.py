"""The Liquid sandbox (issue 18, item 5): every hostile template is refused at save, on the
body field with its line and column, and a version that holds one (saved before the fix, or
data-dependent) fails that one render with a RenderError, quickly and in bounded memory.

Normal templates are unchanged: the starters pass the save checks and render exactly what a
bare python-liquid environment renders."""

from __future__ import annotations

import re
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from liquid import Environment, StrictDefaultUndefined

from campaigns.delivery import email_send, send_create
from campaigns.models import Send
from templates import engine
from templates.context import KNOWN, VARIABLES, message_context
from templates.library import STARTERS
from templates.messages import content_check, message_render, template_snapshot
from templates.models import MessageTemplate, MessageTemplateVariant, MessageTemplateVersion
from tests.factories.experiments import ExperimentSettingsFactory
from tests.factories.learners import LearnerFactory, UserFactory
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory

BIG = "9" * 2200  # two of these multiply past Python's 4,300-digit str() limit
X100 = "x" * 100
# Builds a 90,000-character variable (within the 100,000 the namespace may hold).
CAPTURE_90K = "{% capture s %}{% for i in (1..900) %}" + X100 + "{% endfor %}{% endcapture %}"
NS = "local namespace limit reached: assigned variables would hold more than 100,000 characters"
NUM = "the result is out of range (numbers are below 1e+15)"
NO_FILES = "is not allowed: templates cannot include other templates or files"

# name → (source, column of the problem on its line, reason)
HOSTILE: dict[str, tuple[str, int, str]] = {
    "range_join": (
        "{{ (1..100000000) | join: ',' }}",
        4,
        "range limit reached: (1..100000000) has more than 10,000 items",
    ),
    "percent_nan": (
        "{{ 0.5 | percent:'NaN' }}",
        10,
        "percent: 'NaN' is not a number it can show (below 1e+15)",
    ),
    "money_1e40": (
        "{{ '1e40' | money }}",
        13,
        "money: '1e40' is not a number it can show (below 1e+15)",
    ),
    "local_date_overflow": (
        "{{ '9999-12-31T23:59:59-23:59' | local_date }}",
        34,
        "local_date: 9999-12-31 23:59:59-23:59 is out of range in the learner's time zone",
    ),
    "times_past_4300_digits": ("{{ " + BIG + " | times: " + BIG + " }}", 2207, f"times: {NUM}"),
    "times_chained_in_a_loop": (
        "{% assign n = 10 %}{% for i in (1..500) %}{% assign n = n | times: 1000000000 %}"
        "{% endfor %}{{ n }}",
        61,
        f"times: {NUM}",
    ),
    "include_a_variable": (
        "{% assign f='/etc/passwd' %}{% include f %}",
        32,
        f"'include' {NO_FILES}",
    ),
    "render_a_file": ("{% render 'settings.py' %}", 4, f"'render' {NO_FILES}"),
    "replace_amplified": (
        CAPTURE_90K + "{{ s | replace: 'x', s }}",
        174,
        "replace: the result would be 8,100,000,000 characters long (at most 500,000)",
    ),
    "replace_empty_pattern": (
        CAPTURE_90K + "{{ s | replace: '', 'abcdefgh' }}",
        174,
        "replace: the result would be 810,008 characters long (at most 500,000)",
    ),
    "split_into_characters": (
        CAPTURE_90K + "{{ s | split: '' | size }}",
        174,
        "split: the result would have 90,000 items (at most 10,000)",
    ),
    "nested_loops_1000x1000": (
        "{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}",
        4,
        "loop iteration limit reached: more than 1,000 iterations (nested loops multiply)",
    ),
    "append_doubling": (
        "{% assign t = 'xxxxxxxxxx' %}{% for i in (1..60) %}{% assign t = t | append: t %}"
        "{% endfor %}{{ t }}",
        33,
        NS,
    ),
    "list_of_big_strings": (
        CAPTURE_90K + "{% assign l = s | split: '~' %}{% for i in (1..20) %}"
        "{% assign l = l | concat: l %}{% endfor %}",
        170,
        NS,
    ),
    "date_format_bomb": (
        "{{ 'now' | date: '" + "%_9999Y" * 20 + "' }}",
        12,
        "date: a date format has at most 100 characters",
    ),
    "deep_nesting": (
        "{% if true %}" * 40 + "x" + "{% endif %}" * 40,
        407,
        "block nesting limit reached",
    ),
}
# 300 loops of 1,000 iterations each, every one under the loop limit: stopped by CPU time
# (where it stops depends on the machine's speed, so its column is not fixed).
SEQUENTIAL_LOOPS = "{% for i in (1..1000) %}{% assign a = i %}{% assign b = i %}{% endfor %}" * 300
CPU = r"render time limit reached \(more than 0\.25 s of CPU\)"

HEAD = '<p>Hi</p>\n<a href="{{ unsubscribe_url }}">Unsubscribe</a>\n'  # the source is line 3


def _template(body: str) -> MessageTemplate:
    return MessageTemplate(name="Hostile", subject="Hi", html_body=HEAD + body)


# --- at save -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_full_clean_refuses_it_on_the_body_with_line_and_column(name):
    source, column, reason = HOSTILE[name]
    started = time.perf_counter()
    with pytest.raises(ValidationError) as refused:
        _template(source).full_clean()
    assert time.perf_counter() - started < 2
    assert refused.value.message_dict == {
        "html_body": [f"html_body: line 3, column {column}: {reason}"]
    }
    assert MessageTemplate.objects.filter(name="Hostile").count() == 0


@pytest.mark.django_db
def test_full_clean_refuses_a_cpu_bomb_and_an_oversized_field():
    started = time.perf_counter()
    with pytest.raises(ValidationError) as refused:
        _template(SEQUENTIAL_LOOPS).full_clean()
    assert time.perf_counter() - started < 2
    (message,) = refused.value.message_dict["html_body"]
    assert refused.value.message_dict.keys() == {"html_body"}
    assert re.fullmatch(rf"html_body: line 3, column \d+: {CPU}", message)

    template = _template("")
    template.text_body = "x" * 100_001
    with pytest.raises(ValidationError) as refused:
        template.full_clean()
    assert refused.value.message_dict == {
        "text_body": [
            "text_body: line 1, column 100001: too long: 100,001 characters (at most 100,000)"
        ]
    }


@pytest.mark.django_db
def test_a_variant_is_refused_on_its_own_field():
    template = MessageTemplateFactory()
    variant = MessageTemplateVariant(
        template=template, locale="de", subject="{{ '1e40' | money }}", html_body=HEAD
    )
    with pytest.raises(ValidationError) as refused:
        variant.full_clean()
    assert refused.value.message_dict == {
        "subject": [
            "[de] subject: line 1, column 13: money: '1e40' is not a number it can show "
            "(below 1e+15)"
        ]
    }
    assert MessageTemplateVariant.objects.count() == 0


@pytest.fixture
def marketer(client, db):
    client.force_login(UserFactory(username="hostile", is_staff=True, is_superuser=True))
    return client


def _post(**changes) -> dict:
    data = {
        "name": "Hostile",
        "channel": "email",
        "category": "offers",
        "description": "",
        "is_active": "on",
        "locale": "en",
        "subject": "Hi",
        "preheader": "",
        "html_body": HEAD,
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


ADD = "/admin/message_templates/messagetemplate/add/"


@pytest.mark.parametrize(
    "name",
    ["range_join", "percent_nan", "money_1e40", "local_date_overflow", "include_a_variable"]
    + ["times_past_4300_digits", "replace_amplified"],
)
def test_the_admin_refuses_it_on_the_body_field(marketer, name):
    source, column, reason = HOSTILE[name]
    started = time.perf_counter()
    response = marketer.post(ADD, _post(html_body=HEAD + source))
    assert time.perf_counter() - started < 2
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"html_body": [f"html_body: line 3, column {column}: {reason}"]}
    assert MessageTemplate.objects.filter(name="Hostile").count() == 0
    assert MessageTemplateVersion.objects.filter(template__name="Hostile").count() == 0


def test_the_admin_refuses_a_hostile_variant_on_its_field_and_saves_nothing(marketer):
    before = (MessageTemplate.objects.count(), MessageTemplateVariant.objects.count())
    data = _post(
        **{
            "variants-TOTAL_FORMS": "1",
            "variants-0-locale": "de",
            "variants-0-subject": "Hallo",
            "variants-0-preheader": "",
            "variants-0-html_body": HEAD + HOSTILE["range_join"][0],
            "variants-0-text_body": "",
        }
    )
    response = marketer.post(ADD, data)
    assert response.status_code == 200
    (inline,) = [
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "variants"
    ]
    assert inline.formset.errors == [
        {
            "html_body": [
                "[de] html_body: line 3, column 4: range limit reached: (1..100000000) has "
                "more than 10,000 items"
            ]
        }
    ]
    assert (MessageTemplate.objects.count(), MessageTemplateVariant.objects.count()) == before

    response = marketer.post(ADD, _post(), follow=True)  # the same template, harmless: saved
    assert "Saved as version 1." in response.content.decode()
    assert MessageTemplate.objects.filter(name="Hostile").count() == 1


# --- at render: a version that holds one (saved before the fix) ----------------------------


def _version(source: str) -> MessageTemplateVersion:
    content = {
        "subject": "Hi",
        "preheader": "",
        "html": source,
        "text": "",
        "html_compiled": source,
        "text_compiled": "Hi\n",
    }
    return MessageTemplateVersionFactory(content={"en": content})


def _render_fails(version: MessageTemplateVersion, context: dict) -> str:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(engine.RenderError) as failed:
            message_render(version=version, context=context)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2
    assert peak < 50_000_000  # bytes: no result is built past its limit
    return str(failed.value)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_message_render_fails_with_its_reason_quickly_and_in_bounded_memory(name):
    source, column, reason = HOSTILE[name]
    version = _version(source)
    context = message_context(learner=LearnerFactory(time_zone="Asia/Tokyo"))
    assert _render_fails(version, context) == f"{reason} at line 1, column {column}"


@pytest.mark.django_db
def test_message_render_stops_a_cpu_bomb_under_the_loop_limit():
    version = _version(SEQUENTIAL_LOOPS)
    message = _render_fails(version, message_context(learner=LearnerFactory()))
    assert re.fullmatch(rf"{CPU} at line 1, column \d+", message)


@pytest.mark.django_db
def test_a_data_dependent_bomb_fails_that_one_send_with_its_reason_and_nothing_leaves():
    ExperimentSettingsFactory(global_holdout_percent=0)  # neither learner is held out
    # Passes the trial render at save (the sample learner is not called Zed) …
    body = HEAD + (
        "{% if learner.first_name == 'Zed' %}{{ (1..100000000) | join: ',' }}{% endif %}"
    )
    template = MessageTemplate(name="Zed", subject="Hi {{ learner.first_name }}", html_body=body)
    template.full_clean()
    template.save()
    version = template_snapshot(template=template)
    zed, ana = LearnerFactory(name="Zed Zero"), LearnerFactory(name="Ana Lima")
    sends = {}
    for learner in (zed, ana):
        sends[learner.pk] = send_create(learner=learner, version=version)
        outcome = email_send(send=sends[learner.pk], context=message_context(learner=learner))
        assert outcome.sent is (learner == ana)
    failed = Send.objects.get(pk=sends[zed.pk].pk)
    assert (failed.status, failed.status_reason) == (
        "failed",
        "template: range limit reached: (1..100000000) has more than 10,000 items "
        "at line 3, column 40",
    )
    assert Send.objects.get(pk=sends[ana.pk].pk).status == "sent"
    assert [m.to for m in mail.outbox] == [[ana.email]]


# --- normal templates are unchanged ---------------------------------------------------------


def test_the_sample_context_has_every_documented_variable():
    assert set(engine.SAMPLE_CONTEXT) == KNOWN
    for root, members in VARIABLES.items():
        if "" not in members:
            assert set(engine.SAMPLE_CONTEXT[root]) == set(members), root


def _bare(html: bool) -> Environment:
    """python-liquid without the sandbox, with the product's own filters unguarded."""
    env = Environment(autoescape=html, undefined=StrictDefaultUndefined)
    for name in ("money", "percent", "pluralize", "local_date"):
        env.filters[name] = engine.environment(html).filters[name].__wrapped__
    return env


@pytest.mark.django_db
def test_every_starter_passes_the_save_checks_and_renders_as_bare_liquid_does():
    context = {**engine.SAMPLE_CONTEXT, "learner": {**engine.SAMPLE_CONTEXT["learner"]}}
    context["offer"] = {**context["offer"], "bonus": "a workbook"}
    context["offer"]["expires_at"] = datetime(2026, 5, 1, 15, tzinfo=UTC)
    assert len(STARTERS) == 9
    for starter in STARTERS:
        check = content_check(content=starter, channel="email", marketing=True)
        assert (check.errors, check.warnings) == ([], []), starter["name"]
        for field, html in (("subject", False), ("preheader", False), ("html_body", True)):
            source = starter.get(field, "")
            expected = _bare(html).from_string(source).render(**context)
            assert engine.render(source, context, html=html) == expected, starter["name"]
