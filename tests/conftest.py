import os
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from learners import ingest
from tests.factories.expansion import ApiKeyFactory

# Each test run gets its own PostgreSQL database (and one per xdist worker), so concurrent
# runs on one machine, CI's included, never share or drop each other's data.
RUN_ID = os.environ.get("TEST_RUN_ID") or uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    for db in settings.DATABASES.values():
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        db.setdefault("TEST", {})["NAME"] = f"test_expansion_{RUN_ID}_{worker}"


def pytest_configure(config) -> None:
    """Users are made by the hundred in the security sweeps: hash their passwords with a
    fast hasher (PBKDF2's 1,000,000 rounds took most of their time). Logins still check."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _no_session_outlives_the_run(django_db_setup, django_db_blocker):
    """Before the test database is dropped: end the sessions other processes and threads left
    on it (a live server's request threads keep theirs in thread-local storage), so the drop
    succeeds instead of leaving the database behind."""
    yield

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def write_key(db):
    return ApiKeyFactory(scopes=["read", "write"])


@pytest.fixture
def read_key(db):
    return ApiKeyFactory(scopes=["read"])


@pytest.fixture
def api(write_key) -> APIClient:
    """A client authenticated with a read+write key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {write_key.raw_key}")
    return client


@pytest.fixture
def read_api(read_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key.raw_key}")
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache; no test inherits another's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_learner_cache():
    """The ingestion cache maps external ids to ids that other tests' rollbacks removed."""
    ingest._LEARNER_IDS.clear()
