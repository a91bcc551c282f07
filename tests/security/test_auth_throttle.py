"""Failed authentication is throttled per client address (``API_AUTH_FAILURE_RATE``, 20 a
minute by default): a bad, revoked or malformed key, or no credentials at all. Past the limit
the address gets 429 with Retry-After in the API's error shape — a good key from it too, so
the limit cannot be probed — while other addresses are untouched. DRF's own throttles run
only after authentication succeeded, so without this every guess was a 401, forever."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from expansion.commerce.apikeys import AuthFailureThrottle, api_key_issue, api_key_revoke
from learners.models import Learner
from tests.factories.learners import UserFactory

pytestmark = pytest.mark.django_db
LIMIT = 20
ADDRESS, OTHER = "203.0.113.7", "198.51.100.9"
THROTTLED_REASON = (
    "Too many requests from this address failed to authenticate. Expected available in {} seconds."
)
BAD_KEY = {"errors": [{"index": None, "field": None, "reason": "Invalid or revoked API key."}]}


def client(raw_key: str | None = None, address: str = ADDRESS, **headers: str) -> APIClient:
    api = APIClient(REMOTE_ADDR=address, **headers)
    if raw_key is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return api


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, moved by hand."""
    now = [1_000_000.0]
    monkeypatch.setattr(AuthFailureThrottle, "timer", lambda self: now[0])
    return now


def test_the_default_is_20_a_minute_by_client_address():
    throttle = AuthFailureThrottle()
    assert (throttle.rate, throttle.num_requests, throttle.duration) == ("20/min", 20, 60)


def test_40_bad_keys_the_first_20_are_401_the_rest_429_and_other_addresses_are_untouched(clock):
    good = api_key_issue(name="LMS", scopes=["read"]).raw_key
    codes = []
    for n in range(40):
        clock[0] += 0.5  # 40 guesses in 20 seconds
        response = client(f"exp_guess{n}_{'x' * 43}").get("/api/v1/learners/")
        codes.append(response.status_code)
        if response.status_code == 401:
            assert response.json() == BAD_KEY
            assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert codes == [401] * LIMIT + [429] * 20

    # The oldest failure (at +0.5 s) leaves the window at +60.5 s: 40.5 s from now.
    refused = client(good).get("/api/v1/learners/")  # a good key from that address too
    assert refused.status_code == 429
    assert refused["Retry-After"] == "41"
    assert refused["Cache-Control"] == "no-store"
    assert refused.json() == {
        "errors": [{"index": None, "field": None, "reason": THROTTLED_REASON.format(41)}]
    }
    assert client(good, address=OTHER).get("/api/v1/learners/").status_code == 200
    assert client(f"exp_other_{'x' * 43}", address=OTHER).get("/api/v1/learners/").status_code == (
        401
    )

    # Refused requests did not extend the window: once the oldest failure has left it, the
    # address has one failure to spend again, and the good key reads.
    clock[0] += 40.6
    assert client(good).get("/api/v1/learners/").status_code == 200
    assert client("exp_again_nope").get("/api/v1/learners/").status_code == 401
    assert client("exp_again_nope").get("/api/v1/learners/").status_code == 429


def test_requests_without_credentials_count_too_and_write_nothing(clock):
    codes = [
        client().post("/api/v1/learners/bulk/", {"items": [{"external_id": f"x{n}"}]}).status_code
        for n in range(LIMIT + 5)
    ]
    assert codes == [401] * LIMIT + [429] * 5
    assert Learner.objects.count() == 0
    # They share the address's count with bad keys.
    assert client("exp_nope_nope").get("/api/v1/learners/").status_code == 429


@pytest.mark.parametrize(
    "header", ["Bearer garbage", "Bearer exp_nope_nope", "Api-Key ", "Bearer", "Basic dXNlcjpw"]
)
def test_malformed_and_foreign_credentials_count(clock, header):
    codes = [
        APIClient(REMOTE_ADDR=ADDRESS, HTTP_AUTHORIZATION=header)
        .get("/api/v1/learners/")
        .status_code
        for _ in range(LIMIT + 1)
    ]
    assert codes == [401] * LIMIT + [429]


def test_a_revoked_key_counts_as_a_failure(clock):
    issued = api_key_issue(name="old", scopes=["read"])
    assert client(issued.raw_key).get("/api/v1/learners/").status_code == 200
    api_key_revoke(api_key=issued.api_key)
    codes = [client(issued.raw_key).get("/api/v1/learners/").status_code for _ in range(LIMIT + 1)]
    assert codes == [401] * LIMIT + [429]


def test_good_keys_never_count(clock):
    good = client(api_key_issue(name="LMS", scopes=["read"]).raw_key)
    for _ in range(LIMIT * 2):
        assert good.get("/api/v1/learners/").status_code == 200
    assert client("exp_nope_nope").get("/api/v1/learners/").status_code == 401


def test_a_forwarded_for_header_is_ignored_unless_proxies_are_trusted(clock, settings):
    # By default the address is REMOTE_ADDR: a client cannot pick a fresh one per guess.
    codes = [
        client("exp_nope_nope", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        .get("/api/v1/learners/")
        .status_code
        for n in range(LIMIT + 1)
    ]
    assert codes == [401] * LIMIT + [429]

    # Behind one trusted proxy (API_TRUSTED_PROXIES=1) the client is the address it appended:
    # the rightmost; what the client itself put in front is not believed.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    behind = [
        client("exp_nope_nope", address="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {OTHER}")
        .get("/api/v1/learners/")
        .status_code
        for n in range(LIMIT + 1)
    ]
    assert behind == [401] * LIMIT + [429]
    another = client("exp_nope_nope", address="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.250")
    assert another.get("/api/v1/learners/").status_code == 401


def test_a_signed_in_session_is_not_throttled_by_its_addresses_failures(clock):
    for _ in range(LIMIT):
        client("exp_nope_nope").get("/api/v1/learners/")
    root = APIClient(REMOTE_ADDR=ADDRESS)
    root.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert root.get("/api/v1/learners/").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer exp_nope_nope"])
def test_the_browsable_api_counts_a_failure_once(clock, header):
    """Its page checks the permissions again for each form it might show."""
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    codes = [
        APIClient(REMOTE_ADDR=ADDRESS, HTTP_ACCEPT="text/html", **extra)
        .get("/api/v1/learners/")
        .status_code
        for _ in range(LIMIT + 1)
    ]
    assert codes == [401] * LIMIT + [429]
