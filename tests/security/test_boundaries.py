"""Security boundaries, swept over every view rather than sampled: each admin page and each
API endpoint refuses the wrong role, key or scope. (Signed links: tests/campaigns/
test_delivery.py::test_forged_or_altered_tokens_change_nothing and tests/campaigns/
test_widget.py; the template sandbox: tests/templates/test_engine.py.)"""

import logging

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory
from django.urls import URLPattern, get_resolver, resolve, reverse
from rest_framework.test import APIClient

from campaigns.roles import COURSE_CREATOR, MARKETER
from expansion.commerce.apikeys import AuthFailureThrottle, api_key_issue
from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.learners import CourseFactory, LearnerFactory, UserFactory

pytestmark = pytest.mark.django_db

# Pages no marketer or creator may open (credentials, accounts, the scheduler's internals).
STAFF_ONLY = {"auth.user", "auth.group", "expansion.apikey"}


def _models():
    return sorted(admin.site._registry, key=lambda m: m._meta.label_lower)


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _role(name: str | None):
    user = UserFactory(is_staff=True)
    if name:
        user.groups.add(Group.objects.get(name=name))
    return user


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_admin_page(client):
    for model in _models():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


@pytest.mark.parametrize("role", [None, MARKETER, COURSE_CREATOR])
def test_every_admin_page_opens_only_with_its_permission(role):
    user = _role(role)
    client = _login(user)
    opened = set()
    for model in _models():
        label = model._meta.label_lower
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        allowed = user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}") or (
            user.has_perm(f"{model._meta.app_label}.change_{model._meta.model_name}")
        )
        # follow: a singleton's list (the guardrail policy) redirects to its one object.
        status = client.get(reverse(f"{name}_changelist"), follow=True).status_code
        assert status == (200 if allowed else 403), (role, label, status)
        add = client.get(reverse(f"{name}_add"), follow=True).status_code
        # What the page's own rule says (sends, for one, are only ever made by evaluation;
        # a singleton never), which needs the add permission first.
        request = RequestFactory().get("/")
        request.user = user
        can_add = admin.site._registry[model].has_add_permission(request)
        assert not can_add or user.has_perm(f"{model._meta.app_label}.add_{model._meta.model_name}")
        assert add in ((200,) if can_add else (403,)), (role, label, add)
        if allowed:
            opened.add(label)
    assert not opened & STAFF_ONLY, opened & STAFF_ONLY
    if role is None:
        assert opened == set()  # staff without a role sees nothing
    if role == COURSE_CREATOR:
        assert opened == {"campaigns.campaign", "campaigns.send"}


def test_a_creator_cannot_open_another_creators_campaign_or_send_by_its_url():
    creator, other = _role(COURSE_CREATOR), _role(COURSE_CREATOR)
    theirs = CampaignFactory(course=CourseFactory(creator=other), status="draft")
    send = SendFactory(campaign=theirs, course=theirs.course)
    mine = CampaignFactory(course=CourseFactory(creator=creator), status="draft")
    client = _login(creator)

    for url in (
        reverse("admin:campaigns_campaign_change", args=[theirs.pk]),
        reverse("admin:campaigns_send_change", args=[send.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302, url  # "doesn't exist", back to the index
        assert theirs.name not in response.content.decode()
    assert client.get(reverse("admin:campaigns_campaign_change", args=[mine.pk])).status_code == 200


def _api_urls() -> list[tuple[str, str]]:
    """(name, url) for every /api/v1/ route, with sample values for its parameters."""
    resolver = get_resolver()
    samples = {"external_id": "ann", "pk": 1, "sku": "SQL-2", "kind": "click"}
    urls = []
    for pattern in resolver.url_patterns:
        if getattr(pattern, "namespace", None) != "v1":
            continue
        for route in pattern.url_patterns:
            assert isinstance(route, URLPattern)
            kwargs = {name: samples[name] for name in route.pattern.converters}
            urls.append((route.name, reverse(f"v1:{route.name}", kwargs=kwargs)))
    return urls


def _methods(url: str) -> list[str]:
    view = resolve(url).func.view_class
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]


def test_every_api_endpoint_refuses_no_key_and_the_wrong_scope(monkeypatch):
    # Hundreds of requests without a key from one address: past the failed-authentication
    # limit they would be 429s (tests/security/test_auth_throttle.py).
    monkeypatch.setattr(AuthFailureThrottle, "rate", "100000/min", raising=False)
    LearnerFactory(external_id="ann")
    read = api_key_issue(name="read", scopes=["read"]).raw_key
    write = api_key_issue(name="write", scopes=["write"]).raw_key
    checked = 0
    for name, url in _api_urls():
        for method in _methods(url):
            anonymous = getattr(APIClient(), method)(url, {}, format="json")
            assert anonymous.status_code == 401, (name, method, anonymous.status_code)
            # Reads need "read", writes need "write": the other key is refused before the view.
            wrong = write if method == "get" else read
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code == 403, (name, method, response.status_code)
            checked += 1
    assert checked >= 25


def test_a_staff_session_without_superuser_cannot_write_through_the_api():
    client = APIClient()
    client.force_login(_role(MARKETER))
    response = client.post("/api/v1/learners/bulk/", {"items": []}, format="json")
    assert response.status_code == 403


def test_no_personal_data_reaches_the_logs(api, caplog):
    """Sync a learner, ingest their events, read them back: names, addresses and attribute
    values never appear in any log record, at any level."""
    caplog.set_level(logging.DEBUG)
    secret_email = "grace.hopper.7781@example.org"
    secret_name = "Grace Brewster Hopper"
    learner = {
        "external_id": "gh-1",
        "email": secret_email,
        "name": secret_name,
        "attributes": {"employer": "Navy-Secret-Unit"},
    }
    assert (
        api.post("/api/v1/learners/bulk/", {"items": [learner]}, format="json").status_code == 200
    )
    bad = {**learner, "email": "not-an-address-grace"}
    assert api.post("/api/v1/learners/bulk/", {"items": [bad]}, format="json").status_code == 400
    event = {
        "idempotency_key": "e1",
        "learner": "gh-1",
        "kind": "login",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    assert api.post("/api/v1/events/bulk/", {"items": [event]}, format="json").status_code == 200
    api.get("/api/v1/learners/gh-1/")
    api.get("/api/v1/learners/nobody@example.org/")

    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records  # something was logged, so the check has something to check
    for secret in (secret_email, secret_name, "Navy-Secret-Unit", "not-an-address-grace"):
        assert secret not in logged
