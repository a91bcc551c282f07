"""What reaches the log output: no signed tokens, keys or email addresses, through the real
server (runserver's request lines, ``django.server``) and Django's 4xx warnings
(``django.request``), as the configured console handler writes them."""

import io
import logging
import urllib.error
import urllib.request

import pytest

from campaigns.delivery import click_token, unsubscribe_token
from campaigns.widget import widget_token
from expansion.logs import RedactSecrets, redact
from tests.factories.campaigns import SendFactory
from tests.factories.learners import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def console():
    """The console handler settings.LOGGING configured, writing into a buffer."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecrets) for f in h.filters)
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def _fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_tokens_keys_and_emails_never_reach_the_log(live_server, console):
    send = SendFactory()
    unsubscribe = unsubscribe_token(send.pk)
    click = click_token(send.pk, "https://example.org/offer")
    widget = widget_token(send.learner)
    api_key = "exp_0123abcd_" + "s" * 43

    statuses = [
        # A mail scanner's HEAD of a valid unsubscribe link: 405, logged with its path.
        _fetch(f"{live_server.url}/m/u/{unsubscribe}/", method="HEAD"),
        _fetch(f"{live_server.url}/m/c/{click}x/"),
        _fetch(f"{live_server.url}/w/offers/?token={widget}x&moment=start"),
        _fetch(f"{live_server.url}/api/v1/learners/grace.hopper@example.org/"),
        _fetch(f"{live_server.url}/api/v1/learners/grace.hopper%40example.org/scores/"),
        _fetch(
            f"{live_server.url}/api/v1/learners/", headers={"Authorization": f"Bearer {api_key}"}
        ),
    ]
    # runserver (`make run`) logs each request line through django.server, as basehttp does;
    # the live server's handler is quiet, so the line is logged here the same way.
    logging.getLogger("django.server").warning(
        '"%s" %s %s', f"GET /w/offers/?token={widget}&moment=start HTTP/1.1", 401, 47
    )
    written = console.getvalue()

    assert statuses == [405, 404, 401, 401, 401, 401]
    assert "django.server" in written  # both loggers were written
    assert "django.request" in written
    for secret in (unsubscribe, click, widget, api_key, "grace.hopper", "example.org"):
        assert secret not in written, secret
    assert "/m/u/[token]/" in written
    assert "/w/offers/?token=[redacted]&moment=start" in written
    assert "/api/v1/learners/[email]/" in written


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"HEAD /m/u/eyJzIjo0Mn0:1x2y/ HTTP/1.1" 405 0', '"HEAD /m/u/[token]/ HTTP/1.1" 405 0'),
        ("Not Found: /m/c/abc.def:ghi/", "Not Found: /m/c/[token]/"),
        ("GET /w/offers/?moment=a&token=abc:def", "GET /w/offers/?moment=a&token=[redacted]"),
        ("/api/v1/learners/Ada.L+1@Example.co.uk/", "/api/v1/learners/[email]/"),
        ("/api/v1/learners/ada%40example.org/scores/", "/api/v1/learners/[email]/scores/"),
        ("Authorization: Bearer exp_ab12_xyz", "Authorization: [key]"),
        ("/admin/learners/learner/?q=ada", "/admin/learners/learner/?q=ada"),
    ],
)
def test_redact(line, expected):
    assert redact(line) == expected


def test_a_refused_request_is_one_line_without_a_traceback(client, console):
    client.force_login(UserFactory(is_staff=True))  # staff without a role

    response = client.get("/admin/learners/learner/")
    written = console.getvalue()

    assert response.status_code == 403
    assert "WARNING django.request Forbidden (Permission denied): /admin/learners/learner/\n" in (
        written
    )
    assert "Traceback" not in written
