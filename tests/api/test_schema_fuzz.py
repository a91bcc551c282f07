"""schemathesis against /api/schema/: every operation, generated inputs, no server error and
every response as the schema describes it (status code, content type, body).

The checks are the ones this promise names, on valid generated inputs. ``--checks all``
(``positive_data_acceptance`` and ``negative_data_rejection`` too, on invalid inputs as well)
runs from the command line against the demo data with .ci/schemathesis.toml, which says which
400s of valid data are rules across fields or records (README, "To fuzz the API"). The list
endpoints refuse what they cannot read (a bad ``page_size``, cursor, boolean or date, an
unknown parameter); hostile query strings are covered by tests/security/test_corpus_filters.py.
"""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from expansion.commerce.apikeys import api_key_issue
from expansion.wsgi import application
from tests.factories.learners import CourseFactory, LearnerFactory


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Called in-process, the WSGI app would close the test's database connection at the end
    of each request (it is inside the test's transaction); Django's test client does this."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema():
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = schemathesis.pytest.from_fixture("api_schema")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def bearer(db):
    # Some data for the generated identifiers to hit as well as miss.
    LearnerFactory(external_id="ann")
    CourseFactory(external_id="sql-1")
    key = api_key_issue(name="fuzz", scopes=["read", "write"])
    return {"Authorization": f"Bearer {key.raw_key}"}


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        # An email's pattern under its maxLength: hypothesis discards the long strings it
        # draws from the pattern (CI saw 50 of 59 on POST /learners/bulk/).
        HealthCheck.filter_too_much,
    ],
)
@pytest.mark.django_db
def test_api_conforms_to_its_schema(case, bearer):
    case.call_and_validate(headers=bearer, checks=CHECKS)
