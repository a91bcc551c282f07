"""Every answer under /api/ is the API's JSON, whatever went wrong and with DEBUG on too."""

import pytest
from django.test import Client

from tests.factories.learners import LearnerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_path_is_a_json_404(read_api, method, settings):
    settings.DEBUG = True  # as under make run: no HTML debug page either
    response = getattr(read_api, method)("/api/v1/nothing/here/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"errors": [{"index": None, "field": None, "reason": "Not found."}]}


def test_a_refused_csrf_check_under_the_api_is_json():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/nothing/", data="{}", content_type="application/json")
    assert response.status_code == 404  # the catch-all is exempt: no CSRF page
    from expansion.errors import csrf_failure  # noqa: PLC0415

    request = client.get("/api/v1/learners/").wsgi_request
    refused = csrf_failure(request, reason="CSRF cookie not set.")
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/json"


def test_a_number_past_64_bits_in_attributes_reads_back(api):
    # orjson reads 1.2345678901234568e29 as a float; jsonb keeps the number as written, and
    # psycopg returns it as an integer past orjson's 64-bit limit: the list was a 500.
    body = (
        b'{"items": [{"external_id": "big", "attributes": {"n": 123456789012345678901234567890}}]}'
    )
    assert (
        api.post("/api/v1/learners/bulk/", body, content_type="application/json").json()["created"]
        == 1
    )
    LearnerFactory(external_id="small")
    detail = api.get("/api/v1/learners/big/")
    assert detail.status_code == 200
    assert detail.json()["attributes"] == {"n": 123456789012345680000000000000}
    listing = api.get("/api/v1/learners/")
    assert listing.status_code == 200
    assert sorted(item["external_id"] for item in listing.json()["results"]) == ["big", "small"]


@pytest.mark.parametrize("query", ["start=", "end=", "placed_before="])
def test_a_date_given_empty_is_refused_not_ignored(read_api, query):
    path = "/api/v1/orders/" if query.startswith("placed") else "/api/v1/metrics/"
    response = read_api.get(f"{path}?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == query.rstrip("=")


def test_an_empty_period_is_refused_not_read_as_the_default(read_api):
    response = read_api.get("/api/v1/metrics/?period=")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": None, "field": "period", "reason": '"" is not a valid choice.'}
    ]


def test_a_future_start_alone_is_a_period_of_its_own_not_a_400(read_api):
    response = read_api.get("/api/v1/metrics/?start=2105-03-26")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["start"], body["end"]) == ("2105-03-26", "2105-03-26")
    assert [row["period_start"] for row in body["results"]] == ["2105-03-01"]
    assert body["results"][0]["orders"] == 0
    # Both given the wrong way round: still refused.
    response = read_api.get("/api/v1/metrics/?start=2105-03-26&end=2105-03-01")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "start"


@pytest.mark.parametrize("moment", ["abc%0A", "%20abc", "a.b"])
def test_a_moment_that_is_not_a_slug_is_refused_as_given(read_api, moment):
    LearnerFactory(external_id="ann")
    response = read_api.get(f"/api/v1/learners/ann/offers/?moment={moment}")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": None, "field": "moment", "reason": "must be a slug: letters, digits, - and _"}
    ]
    assert read_api.get("/api/v1/learners/ann/offers/?moment=abc").json() == {"offer": None}


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/courses/", "creator"), ("/api/v1/learners/", "account")],
)
def test_a_nul_in_a_text_filter_is_the_400_its_schema_says(read_api, path, field):
    LearnerFactory(external_id="ann")
    response = read_api.get(f"{path}?{field}=a%00b")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": None, "field": field, "reason": "Null characters are not allowed."}
    ]
    response = read_api.get(f"{path}?{field}=no-such")
    assert (response.status_code, response.json()["results"]) == (200, [])
    schema = read_api.get("/api/schema/?format=json").json()
    [parameter] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == field]
    assert parameter["schema"] == {"type": "string", "pattern": "^[^\\x00]*$"}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/products/", "is_active"),
        ("/api/v1/learners/", "marketing_opt_in"),
    ],
)
def test_a_filter_that_is_not_text_given_empty_is_refused(read_api, path, field):
    response = read_api.get(f"{path}?{field}=")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "index": None,
            "field": field,
            "reason": "is empty: give a value, or leave the parameter out",
        }
    ]
    # A text filter given empty is no filter (its schema allows "").
    assert read_api.get(f"{path}?{'kind' if 'products' in path else 'email'}=").status_code == 200
