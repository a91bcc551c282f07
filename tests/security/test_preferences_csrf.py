"""The preference page (/m/u/<token>/) changes consent only for the learner's own browser: a
signed token *and* a same-site POST carrying the page's CSRF token. The RFC 8058 one-click POST
a mail provider sends (cross-site, no cookie, no CSRF token) still unsubscribes — and can only
ever unsubscribe. Neither the page nor a tracked click is kept by any cache (issue 18)."""

import re

import pytest
from django.test import Client

from campaigns.delivery import click_token, unsubscribe_token
from campaigns.models import SendEvent
from learners.consent import consent_unsubscribe
from learners.models import CategoryOptOut, ConsentChange, Learner
from tests.factories.campaigns import SendFactory
from tests.factories.learners import LearnerFactory

pytestmark = pytest.mark.django_db

CROSS_SITE = {"HTTP_ORIGIN": "https://attacker.example", "HTTP_SEC_FETCH_SITE": "cross-site"}
RESUBSCRIBE = {"action": "save", "category": ["offers", "learning", "news"]}


def _state(learner: Learner) -> tuple:
    learner.refresh_from_db()
    return (
        learner.unsubscribed_at,
        sorted(CategoryOptOut.objects.filter(learner=learner).values_list("category", flat=True)),
        ConsentChange.objects.filter(learner=learner).count(),
        SendEvent.objects.count(),
    )


@pytest.fixture
def unsubscribed():
    """A learner who unsubscribed from everything, and the preference link of their email."""
    learner = LearnerFactory()
    send = SendFactory(learner=learner, category="offers")
    consent_unsubscribe(learner, source="preferences", send_id=send.pk)
    learner.refresh_from_db()
    assert learner.unsubscribed_at is not None
    return learner, send, f"/m/u/{unsubscribe_token(send.pk)}/"


def _form_token(client: Client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200
    (token,) = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    return token


def test_a_cross_site_post_cannot_resubscribe(unsubscribed):
    learner, _, url = unsubscribed
    before = _state(learner)
    browser = Client(enforce_csrf_checks=True)

    # The attacker's form: no CSRF cookie or token at all; then with the victim's cookie (a
    # browser that sent it cross-site) but still no token, which no other site can read.
    bare = browser.post(url, RESUBSCRIBE, **CROSS_SITE)
    _form_token(browser, url)
    with_cookie = browser.post(url, RESUBSCRIBE, **CROSS_SITE)
    everything = browser.post(url, {"action": "all"}, **CROSS_SITE)

    assert [bare.status_code, with_cookie.status_code, everything.status_code] == [403, 403, 403]
    assert _state(learner) == before
    assert before[0] is not None


def test_a_post_from_the_page_itself_saves_the_choice(unsubscribed):
    learner, _, url = unsubscribed
    browser = Client(enforce_csrf_checks=True)
    token = _form_token(browser, url)
    changes = ConsentChange.objects.filter(learner=learner).count()

    saved = browser.post(
        url,
        {"csrfmiddlewaretoken": token, "action": "save", "category": ["learning"]},
        HTTP_SEC_FETCH_SITE="same-origin",
    )

    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.content.decode()
    unsubscribed_at, opted_out, n_changes, n_events = _state(learner)
    assert unsubscribed_at is None  # choosing a category is consent again
    assert opted_out == ["news", "offers"]
    assert n_changes == changes + 3  # back in (all), out of offers, out of news
    assert n_events == 1


@pytest.mark.parametrize("form", ["urlencoded", "multipart"])
def test_one_click_from_a_mail_provider_still_unsubscribes(form):
    learner = LearnerFactory()
    send = SendFactory(learner=learner, category="offers")
    url = f"/m/u/{unsubscribe_token(send.pk)}/"
    provider = Client(enforce_csrf_checks=True)  # no cookie, no CSRF token, cross-site

    if form == "urlencoded":
        response = provider.post(
            url,
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
            **CROSS_SITE,
        )
    else:
        response = provider.post(url, {"List-Unsubscribe": "One-Click"}, **CROSS_SITE)

    assert response.status_code == 200
    assert response.content == b"Unsubscribed.\n"
    assert "no-store" in response["Cache-Control"]
    assert _state(learner) == (None, ["offers"], 1, 1)
    change = ConsentChange.objects.get(learner=learner)
    assert (change.category, change.subscribed, change.source) == ("offers", False, "one_click")


def test_one_click_only_ever_unsubscribes(unsubscribed):
    """A one-click body carrying the page's fields (choose every category) re-subscribes no
    one and changes no other preference: it is a one-click unsubscribe, and nothing more."""
    learner, _, url = unsubscribed
    before = _state(learner)
    response = Client(enforce_csrf_checks=True).post(
        url,
        "List-Unsubscribe=One-Click&action=save&category=offers&category=learning&category=news",
        content_type="application/x-www-form-urlencoded",
        **CROSS_SITE,
    )

    assert response.status_code == 200
    assert response.content == b"Unsubscribed.\n"
    after = _state(learner)
    assert after[0] == before[0]  # still unsubscribed from everything
    assert after[1] == ["offers"]  # out of this email's category too, nothing else
    assert after[2] == before[2] + 1
    assert ConsentChange.objects.filter(learner=learner, subscribed=True).count() == 0


def test_a_tampered_token_changes_nothing_even_with_a_valid_csrf_token(unsubscribed):
    learner, send, url = unsubscribed
    browser = Client(enforce_csrf_checks=True)
    csrf = _form_token(browser, url)
    before = _state(learner)
    token = unsubscribe_token(send.pk)
    other = SendFactory(learner=LearnerFactory())
    tampered = [
        f"/m/u/{token[:-2]}xx/",  # a damaged signature
        f"/m/u/{token.replace(token.split(':')[0], str(other.pk), 1)}/",  # another send's id
    ]

    responses = [
        browser.post(bad, {"csrfmiddlewaretoken": csrf, **RESUBSCRIBE}) for bad in tampered
    ] + [
        Client(enforce_csrf_checks=True).post(
            bad,
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
            **CROSS_SITE,
        )
        for bad in tampered
    ]

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert _state(learner) == before
    assert CategoryOptOut.objects.filter(learner=other.learner).count() == 0
    assert ConsentChange.objects.filter(learner=other.learner).count() == 0


def test_the_preference_page_and_clicks_are_never_cached(unsubscribed):
    _, send, url = unsubscribed
    page = Client().get(url)
    click = Client().get(f"/m/c/{click_token(send.pk, 'https://learn.example.org/next')}/")

    assert page.status_code == 200
    assert click.status_code == 302
    assert click["Location"] == "https://learn.example.org/next"
    for response in (page, click):
        assert "no-store" in response["Cache-Control"]
        assert "private" in response["Cache-Control"]
