import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from expansion.commerce.apikeys import ApiKeyRateThrottle, api_key_issue, api_key_revoke, digest_key
from expansion.commerce.models import ApiKey
from learners.models import Learner
from tests.factories.learners import UserFactory

pytestmark = pytest.mark.django_db
ITEMS = {"items": [{"external_id": "a"}]}


def client_with(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def test_issued_key_is_stored_only_as_a_digest():
    issued = api_key_issue(name="LMS", scopes=["write", "read"])
    row = ApiKey.objects.get()
    assert row.digest == digest_key(issued.raw_key)
    assert issued.raw_key not in (row.digest, row.prefix, row.name)
    assert issued.raw_key.startswith(f"exp_{row.prefix}_")
    assert row.scopes == ["read", "write"]


def test_issue_refuses_unknown_scopes():
    with pytest.raises(ValueError, match="scopes"):
        api_key_issue(name="x", scopes=["admin"])
    assert ApiKey.objects.count() == 0


def test_no_credentials_are_refused():
    response = APIClient().get("/api/v1/learners/")
    assert response.status_code == 401
    assert APIClient().post("/api/v1/learners/bulk/", ITEMS, format="json").status_code == 401
    assert Learner.objects.count() == 0


@pytest.mark.parametrize("header", ["Bearer exp_nope_nope", "Bearer garbage", "Api-Key "])
def test_wrong_keys_are_refused(header):
    issued = api_key_issue(name="x", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/learners/").status_code == 401
    forged = issued.raw_key[:-1] + ("A" if issued.raw_key[-1] != "A" else "B")
    assert client_with(forged).get("/api/v1/learners/").status_code == 401


def test_read_key_cannot_write_and_write_only_key_cannot_read():
    reader = client_with(api_key_issue(name="r", scopes=["read"]).raw_key)
    writer = client_with(api_key_issue(name="w", scopes=["write"]).raw_key)
    assert reader.get("/api/v1/learners/").status_code == 200
    refused = reader.post("/api/v1/learners/bulk/", ITEMS, format="json")
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": [
            {"index": None, "field": None, "reason": "This API key lacks the 'write' scope."}
        ]
    }
    assert Learner.objects.count() == 0
    assert writer.get("/api/v1/learners/").status_code == 403
    assert writer.post("/api/v1/learners/bulk/", ITEMS, format="json").status_code == 200
    assert Learner.objects.count() == 1


def test_revoked_key_is_refused():
    issued = api_key_issue(name="x", scopes=["read", "write"])
    client = client_with(issued.raw_key)
    assert client.get("/api/v1/learners/").status_code == 200
    api_key_revoke(api_key=issued.api_key)
    assert client.get("/api/v1/learners/").status_code == 401


def test_last_used_is_recorded():
    issued = api_key_issue(name="x", scopes=["read"])
    assert issued.api_key.last_used_at is None
    client_with(issued.raw_key).get("/api/v1/learners/")
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


def test_a_session_reads_only_with_its_permission_and_never_writes(client):
    """The full sweep over endpoints and roles: tests/security/test_api_roles.py."""
    staff = UserFactory(username="staff", is_staff=True)
    api = APIClient()
    api.force_authenticate(staff)
    assert api.get("/api/v1/learners/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="read_api_by_session"))
    api.force_authenticate(User.objects.get(pk=staff.pk))  # a fresh permission cache
    assert api.get("/api/v1/learners/").status_code == 200
    root = APIClient()
    root.force_authenticate(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert root.get("/api/v1/learners/").status_code == 200
    assert root.post("/api/v1/learners/bulk/", ITEMS, format="json").status_code == 403
    assert api.post("/api/v1/learners/bulk/", ITEMS, format="json").status_code == 403
    assert Learner.objects.count() == 0
    nobody = APIClient()
    nobody.force_authenticate(UserFactory(username="plain"))
    assert nobody.get("/api/v1/learners/").status_code == 403


def test_throttle_per_key(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "2/min", raising=False)
    client = client_with(api_key_issue(name="x", scopes=["read"]).raw_key)
    other = client_with(api_key_issue(name="y", scopes=["read"]).raw_key)
    codes = [client.get("/api/v1/learners/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert other.get("/api/v1/learners/").status_code == 200
