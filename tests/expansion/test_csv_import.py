"""CSV import of learners, events and orders: the API's validation, all or nothing, errors by
row and column, progress streamed — through the admin page a marketer uses."""

import html
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.roles import COURSE_CREATOR, MARKETER
from expansion.commerce.models import Order, OrderLine
from expansion.csv_import import KINDS, CsvError, csv_parse, import_run
from learners.models import Event, Learner
from tests.factories.expansion import ProductFactory
from tests.factories.learners import CourseFactory, LearnerFactory
from tests.helpers import role_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    client.force_login(role_user(MARKETER))
    return client


def _post(client, kind: str, text: str, name: str = "rows.csv"):
    upload = SimpleUploadedFile(name, text.encode(), content_type="text/csv")
    response = client.post(f"/admin/import/{kind}/", {"file": upload})
    body = (
        b"".join(response.streaming_content).decode()
        if response.streaming
        else response.content.decode()
    )
    return response, body


def test_learners_import_through_the_api_rules(marketer):
    response, body = _post(
        marketer,
        "learners",
        "external_id,email,name,time_zone,marketing_opt_in,attributes\n"
        'ann,ann@example.com,Ann Lee,Europe/London,yes,"{""plan"": ""pro""}"\n'
        "\n"
        "bob,bob@example.com,Bob,,false,\n",
    )
    assert response.status_code == 200
    assert "Imported: 2 created, 0 updated." in body
    assert '<p class="import-progress">2 of 2 items checked…</p>' in body
    ann = Learner.objects.get(external_id="ann")
    assert (ann.email, ann.time_zone, ann.marketing_opt_in, ann.attributes) == (
        "ann@example.com",
        "Europe/London",
        True,
        {"plan": "pro"},
    )
    bob = Learner.objects.get(external_id="bob")
    assert (bob.marketing_opt_in, bob.time_zone) == (False, "UTC")  # empty: not sent
    # Again, changed: an upsert.
    _, body = _post(marketer, "learners", "external_id,name\nann,Ann Lee-Smith\n")
    assert "Imported: 0 created, 1 updated." in body
    ann.refresh_from_db()
    assert (ann.name, ann.email) == ("Ann Lee-Smith", "ann@example.com")


def test_one_bad_row_writes_nothing_and_every_problem_is_named(marketer):
    LearnerFactory(external_id="kept", name="Before")
    before = Learner.objects.count()
    _, body = _post(
        marketer,
        "learners",
        "external_id,email,time_zone,name\n"
        "kept,kept@example.com,UTC,After\n"
        "c1,not-an-email,UTC,\n"
        "c2,c2@example.com,Mars/Olympus,\n",
    )
    assert "Nothing was written: 2 problems to fix in the file" in body
    rows = [
        line
        for line in body.split('<table id="import-errors">')[1].split("</table>")[0].split("<tr>")
        if "<td>" in line
    ]
    assert [r.split("</td>")[0].replace("<td>", "") for r in rows] == ["3", "4"]
    assert "<td>email</td>" in rows[0]
    assert "<td>time_zone</td>" in rows[1]
    assert Learner.objects.count() == before
    assert Learner.objects.get(external_id="kept").name == "Before"


def test_orders_take_a_row_per_line_and_a_bad_line_names_its_row():
    LearnerFactory(external_id="ann")
    ProductFactory(sku="SQL-2")
    ProductFactory(sku="CERT")
    kind = KINDS["orders"]
    good = csv_parse(
        kind=kind,
        data=b"external_id,learner,placed_at,line_external_id,sku,quantity,unit_price\n"
        b"o1,ann,2026-11-30T10:00:00Z,1,SQL-2,1,99.00\n"
        b"o1,ann,2026-11-30T10:00:00Z,2,CERT,2,10.00\n"
        b"o2,ann,2026-11-30T11:00:00Z,1,CERT,1,10.00\n",
    )
    assert [len(item["lines"]) for item in good.items] == [2, 1]
    assert good.rows == [[2, 3], [4]]
    outcome = import_run(kind=kind, parsed=good)
    assert (outcome.written, outcome.created) == (True, 2)
    assert OrderLine.objects.filter(order__external_id="o1").count() == 2
    assert Order.objects.get(external_id="o2").placed_at == datetime(2026, 11, 30, 11, tzinfo=UTC)

    bad = csv_parse(
        kind=kind,
        data=b"external_id,learner,placed_at,line_external_id,sku,unit_price\n"
        b"o3,ann,2026-11-30T10:00:00Z,1,SQL-2,99.00\n"
        b"o3,ann,2026-11-30T10:00:00Z,2,NOPE,10.00\n",
    )
    outcome = import_run(kind=kind, parsed=bad)
    assert outcome.written is False
    assert [(e["row"], e["column"]) for e in outcome.errors] == [(3, "sku")]
    assert not Order.objects.filter(external_id="o3").exists()
    with pytest.raises(CsvError, match="order o4 says 'ann' on an earlier row and 'bob' here"):
        csv_parse(
            kind=kind,
            data=b"external_id,learner,placed_at,line_external_id,sku,unit_price\n"
            b"o4,ann,2026-11-30T10:00:00Z,1,SQL-2,99.00\n"
            b"o4,bob,2026-11-30T10:00:00Z,2,SQL-2,99.00\n",
        )
    assert Decimal(str(OrderLine.objects.get(order__external_id="o2").unit_price)) == Decimal(
        "10.00"
    )


def test_events_import_and_replay_adds_nothing(marketer):
    course = CourseFactory(external_id="sql-1")
    LearnerFactory(external_id="ann")
    text = (
        "idempotency_key,learner,kind,occurred_at,course,value\n"
        f"e1,ann,login,2026-11-30T10:00:00Z,{course.external_id},\n"
        f"e2,ann,assessment_submitted,2026-11-30T10:05:00Z,{course.external_id},91\n"
    )
    _, body = _post(marketer, "events", text)
    assert "Imported: 2 stored, 0 updated." in body
    assert Event.objects.get(idempotency_key="e2").value == 91
    _, body = _post(marketer, "events", text)
    assert "Imported: 0 stored, 0 updated, 2 already there (replayed, not stored again)." in body
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"external_id,emial\nann,a@b.c\n", "row 1: 'emial' is not a column of a learners import"),
        (b"name\nAnn\n", "row 1: the required column(s) external_id are missing"),
        (b"", "the file is empty"),
        (b"external_id\n", "the file has a header and no rows"),
        ("external_id,name\nann,Zoë\n".encode("latin-1"), "the file is not UTF-8 (byte 23)"),
        (b"external_id,name\nann\n", "row 2: 1 cells for 2 columns"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(marketer, data, message):
    response = marketer.post(
        "/admin/import/learners/",
        {"file": SimpleUploadedFile("x.csv", data, content_type="text/csv")},
    )
    assert response.status_code == 400
    assert f"Nothing was imported: {message}" in html.unescape(response.content.decode())
    assert Learner.objects.count() == 0


def test_who_may_import(client, marketer):
    page = marketer.get("/admin/learners/learner/").content.decode()
    assert 'href="/admin/import/learners/" class="import-link"' in page
    assert marketer.get("/admin/import/nothing/").status_code == 404
    client.force_login(role_user(COURSE_CREATOR))
    response = client.post(
        "/admin/import/learners/",
        {"file": SimpleUploadedFile("x.csv", b"external_id\nann\n", content_type="text/csv")},
    )
    assert response.status_code == 403
    assert Learner.objects.count() == 0
