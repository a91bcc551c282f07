"""Who may use the API, swept over every /api/v1/ route (from the URL resolver, so a new
endpoint is covered the day it is added) × every method × every persona.

The API is for API keys: ``read`` for GET, HEAD and OPTIONS, ``write`` for the rest. An admin
session may only read, and only with ``expansion.read_api_by_session`` — held implicitly by
superusers, granted by no role. A session never writes, a superuser's neither. Every refused
request changes nothing: no row written, no send's state moved (reading a card included)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.urls import URLPattern, get_resolver, resolve, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.models import Send
from campaigns.roles import COURSE_CREATOR, MARKETER
from expansion.commerce.apikeys import AuthFailureThrottle, api_key_issue
from tests.campaigns.conftest import card_campaign, card_send
from tests.factories.expansion import (
    CommerceSettingsFactory,
    OrderFactory,
    OrderLineFactory,
    SubscriptionFactory,
)
from tests.factories.experiments import ExperimentFactory
from tests.factories.learners import (
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerScoreFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

METHODS = ("get", "head", "options", "post", "put", "patch", "delete")
SAFE = {"get", "head", "options"}
NO_CREDENTIALS = {
    "errors": [
        {"index": None, "field": None, "reason": "Authentication credentials were not provided."}
    ]
}
SESSION_WRITES = {
    "errors": [
        {
            "index": None,
            "field": None,
            "reason": "An admin session cannot write through the API; use an API key.",
        }
    ]
}
SESSION_READS = {
    "errors": [
        {
            "index": None,
            "field": None,
            "reason": "An admin session may read the API only with the permission "
            "'Can read the API from an admin session'; use an API key.",
        }
    ]
}


@pytest.fixture(autouse=True)
def _no_failure_limit(monkeypatch):
    """The sweep sends hundreds of requests without credentials from one address; the
    failed-authentication limit has its own tests (test_auth_throttle.py)."""
    monkeypatch.setattr(AuthFailureThrottle, "rate", "100000/min", raising=False)


@pytest.fixture
def world(settings):
    """One of everything the API reads, and each route's parameters pointing at it."""
    settings.SITE_URL = "https://expansion.example.org"
    CommerceSettingsFactory()  # the singleton a first read would make with its defaults
    campaign, version, learner = card_campaign()
    send = card_send(campaign, version, learner)
    LearnerScoreFactory(learner=learner)
    course = CourseFactory(external_id="sql-1")
    enrollment = EnrollmentFactory(learner=learner, course=course)
    event = EventFactory(learner=learner, course=course, occurred_at=timezone.now())
    order = OrderFactory(learner=learner, external_id="ord-1")
    OrderLineFactory(order=order, product=campaign.offer.product)
    subscription = SubscriptionFactory(learner=learner, external_id="sub-1")
    experiment = ExperimentFactory()
    product = campaign.offer.product
    kwargs = {
        "learner-detail": {"external_id": "ann"},
        "learner-scores": {"external_id": "ann"},
        "learner-recommendations": {"external_id": "ann"},
        "learner-offers": {"external_id": "ann"},
        "learner-widget-token": {"external_id": "ann"},
        "send-feedback": {"pk": send.pk, "kind": "impression"},
        "experiment-results": {"pk": experiment.pk},
        "course-detail": {"external_id": course.external_id},
        "enrollment-detail": {"pk": enrollment.pk},
        "event-detail": {"pk": event.pk},
        "product-detail": {"sku": product.sku},
        "product-recommendations": {"sku": product.sku},
        "order-detail": {"external_id": order.external_id},
        "subscription-detail": {"external_id": subscription.external_id},
    }
    return send, kwargs


def api_urls(known: dict[str, dict]) -> list[tuple[str, str]]:
    """(name, url) for every /api/v1/ route: the world's parameters where it has them, else
    sample values (an endpoint added later is still swept)."""
    samples = {"external_id": "ann", "pk": 1, "sku": "SKU-0", "kind": "click"}
    urls = []
    for pattern in get_resolver().url_patterns:
        if getattr(pattern, "namespace", None) != "v1":
            continue
        for route in pattern.url_patterns:
            assert isinstance(route, URLPattern)
            kwargs = known.get(route.name) or {n: samples[n] for n in route.pattern.converters}
            urls.append((route.name, reverse(f"v1:{route.name}", kwargs=kwargs)))
    assert len(urls) >= 29  # as of this test; more as endpoints are added
    return urls


def handles(url: str, method: str) -> bool:
    return hasattr(resolve(url).func.view_class, method)


def call(client: APIClient, method: str, url: str):
    if method in SAFE:
        return getattr(client, method)(url)
    return getattr(client, method)(url, {}, format="json")


def session(user) -> APIClient:
    client = APIClient()  # CSRF is not enforced: the permission alone must refuse
    client.force_login(user)
    return client


def key(scopes: list[str]) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_issue(name='k', scopes=scopes).raw_key}"
    )
    return client


def staff(role: str | None = None):
    user = UserFactory(is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def snapshot() -> dict:
    """Every table's row count (sessions and API keys' last use aside), and every send's
    state."""
    skip = {"sessions.session", "expansion.apikey"}
    counts = {
        m._meta.label_lower: m._default_manager.count()
        for m in apps.get_models()
        if m._meta.label_lower not in skip and m._meta.managed
    }
    sends = list(
        Send.objects.order_by("pk").values_list(
            "pk", "status", "sent_at", "seen_at", "clicked_at", "clicks", "dismissed_at"
        )
    )
    return {"counts": counts, "sends": sends}


def assert_unchanged(before: dict) -> None:
    after = snapshot()
    moved = {
        label: (count, after["counts"][label])
        for label, count in before["counts"].items()
        if after["counts"][label] != count
    }
    assert moved == {}
    assert after["sends"] == before["sends"]


def test_no_role_grants_reading_the_api_by_session():
    permission = Permission.objects.get(
        content_type__app_label="expansion", codename="read_api_by_session"
    )
    assert permission.name == "Can read the API from an admin session (browsable API)"
    assert list(permission.group_set.all()) == []
    for role in (None, MARKETER, COURSE_CREATOR):
        assert not staff(role).has_perm("expansion.read_api_by_session"), role
    root = UserFactory(is_staff=True, is_superuser=True)
    assert root.has_perm("expansion.read_api_by_session")


def test_every_endpoint_and_method_for_every_persona(world):
    send, known = world
    urls = api_urls(known)
    granted = staff()
    granted.user_permissions.add(Permission.objects.get(codename="read_api_by_session"))
    refused = {
        "anonymous": APIClient(),
        "course creator": session(staff(COURSE_CREATOR)),
        "staff without a role": session(staff()),
        "marketer": session(staff(MARKETER)),
    }
    readers = {
        "superuser": session(UserFactory(is_staff=True, is_superuser=True)),
        "staff granted the permission": session(granted),
    }
    read_key, write_key = key(["read"]), key(["write"])
    before = snapshot()
    checked = 0

    # Sessions without the permission, and no credentials: nothing, by any method.
    for persona, client in refused.items():
        for name, url in urls:
            for method in METHODS:
                response = call(client, method, url)
                want = 401 if persona == "anonymous" else 403
                assert response.status_code == want, (persona, name, method)
                if method != "head":
                    body = NO_CREDENTIALS if want == 401 else SESSION_WRITES
                    if want == 403 and method in SAFE:
                        body = SESSION_READS
                    assert response.json() == body, (persona, name, method)
                checked += 1

    # Readers (and the read key) read what the read key reads; none of them writes.
    reads: dict[tuple[str, str], int] = {}
    for name, url in urls:
        for method in METHODS:
            response = call(read_key, method, url)
            if method in SAFE:
                assert response.status_code not in (401, 403), (name, method)
                reads[(name, method)] = response.status_code
            else:
                assert response.status_code == 403, (name, method)
                assert response.json()["errors"][0]["reason"] == (
                    "This API key lacks the 'write' scope."
                )
    for persona, client in readers.items():
        for name, url in urls:
            for method in METHODS:
                response = call(client, method, url)
                if method in SAFE:
                    assert response.status_code == reads[(name, method)], (persona, name, method)
                else:
                    assert response.status_code == 403, (persona, name, method)
                    assert response.json() == SESSION_WRITES, (persona, name, method)
                checked += 1
    # Every route that reads reads (200, its card included); OPTIONS answers everywhere; the
    # routes that only write answer a read 405 — and none of it moved anything.
    for name, url in urls:
        reader = handles(url, "get")
        want = {"get": 200 if reader else 405, "head": 200 if reader else 405, "options": 200}
        got = {method: reads[(name, method)] for method in SAFE}
        if name in known or reader:
            assert got == want, name
    assert_unchanged(before)
    send.refresh_from_db()
    assert (send.status, send.sent_at, send.seen_at) == ("queued", None, None)

    # The write key writes and reads nothing.
    for name, url in urls:
        for method in METHODS:
            response = call(write_key, method, url)
            if method in SAFE:
                assert response.status_code == 403, (name, method)
                if method != "head":
                    assert response.json()["errors"][0]["reason"] == (
                        "This API key lacks the 'read' scope."
                    )
            elif not handles(url, method):
                assert response.status_code == 405, (name, method)
            else:  # {} is no bulk; the feedback is an impression; a token is made
                want = 200 if name in ("send-feedback", "learner-widget-token") else 400
                assert response.status_code == want, (name, method, response.content)
            checked += 1
    assert checked == len(urls) * len(METHODS) * 7
    send.refresh_from_db()
    assert send.status == "opened"  # the write key's impression: sent and seen


def test_a_marketer_session_posting_a_feedback_or_a_bulk_changes_nothing(world):
    """With CSRF enforced as in a browser, and without: refused before any view runs."""
    send, _ = world
    marketer = staff(MARKETER)
    root = APIClient()
    root.force_login(UserFactory(is_staff=True, is_superuser=True))
    before = snapshot()
    for enforce in (True, False):
        client = APIClient(enforce_csrf_checks=enforce)
        client.force_login(marketer)
        for url in (
            f"/api/v1/sends/{send.pk}/dismiss/",
            "/api/v1/learners/bulk/",
            "/api/v1/learners/ann/widget-token/",
        ):
            response = client.post(url, {"reason": "not_now", "items": []}, format="json")
            assert response.status_code == 403, (enforce, url)
    assert_unchanged(before)
    response = root.post(f"/api/v1/sends/{send.pk}/dismiss/", {"reason": "not_now"}, format="json")
    assert (response.status_code, response.json()) == (403, SESSION_WRITES)
    assert_unchanged(before)


def test_every_api_response_is_no_store(world, api):
    send, known = world
    for name, url in api_urls(known):
        for method in ("get", "post"):
            response = call(api, method, url)
            assert response["Cache-Control"] == "no-store", (name, method)
    for response in (
        APIClient().get("/api/v1/learners/"),  # 401
        api.get("/api/v1/no-such-thing/"),  # Django's 404, not DRF's
        api.get("/api/schema/"),
    ):
        assert response["Cache-Control"] == "no-store", response.status_code
    # Elsewhere the header is left to each page.
    assert "Cache-Control" not in APIClient().get("/")


def test_a_card_read_twice_by_a_read_key_is_the_same_card_and_still_queued(world, read_api):
    send, _ = world
    first = read_api.get("/api/v1/learners/ann/offers/")
    second = read_api.get("/api/v1/learners/ann/offers/")
    assert first.json() == second.json()
    assert first.json()["offer"]["send"] == send.pk
    send.refresh_from_db()
    assert (send.status, send.sent_at) == ("queued", None)
