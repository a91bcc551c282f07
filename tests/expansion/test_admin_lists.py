"""The big tables' admin lists (expansion/core/admin_lists.py): bounded count, date hierarchy
from MIN/MAX, filters without DISTINCT, whole-value search on indexes — and no query that
reads the whole table (EXPLAIN of every statement a list page runs)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from expansion.core import admin_lists
from expansion.core.admin_lists import EstimatedCountPaginator, indexed_search
from learners.admin.learners import LearnerAdmin
from learners.models import Event, Learner
from tests.factories.learners import EventFactory, LearnerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _ids(body: str) -> list[str]:
    return re.findall(r'name="_selected_action" value="(\d+)"', body)


def test_the_count_is_exact_up_to_the_limit_then_the_planners_estimate(monkeypatch):
    monkeypatch.setattr(admin_lists, "EXACT_COUNT_LIMIT", 3)
    for n in range(3):
        LearnerFactory(external_id=f"c-{n}")
    assert EstimatedCountPaginator(Learner.objects.all(), 2).count == 3
    LearnerFactory(external_id="c-3")
    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(Learner.objects.all(), 2).count
    # Never below limit + 1 once the bounded count reached it; never a COUNT of every row.
    assert count >= 4
    assert "LIMIT 4" in queries.captured_queries[0]["sql"]
    assert queries.captured_queries[1]["sql"].startswith("EXPLAIN")
    assert len(queries.captured_queries) == 2


def test_search_matches_whole_values_on_each_indexed_column(root):
    ada = LearnerFactory(external_id="ada-1", email="Ada@Example.org", name="Ada Lovelace")
    LearnerFactory(external_id="ada-10", email="other@example.org", name="Ada")
    assert _ids(root.get("/admin/learners/learner/?q=ada-1").content.decode()) == [str(ada.pk)]
    assert _ids(root.get("/admin/learners/learner/?q=ada@example.ORG").content.decode()) == [
        str(ada.pk)
    ]
    assert _ids(root.get("/admin/learners/learner/?q=ada lovelace").content.decode()) == [
        str(ada.pk)
    ]
    # A part of a value matches nothing (a "contains" search scanned every learner).
    assert _ids(root.get("/admin/learners/learner/?q=lovelace").content.decode()) == []


def test_event_search_by_learner_or_key_and_kind_filter(root):
    ada, bob = LearnerFactory(external_id="ada"), LearnerFactory(external_id="bob")
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    mine = EventFactory(learner=ada, kind="login", occurred_at=at)
    keyed = EventFactory(learner=bob, kind="login", occurred_at=at, idempotency_key="ada")
    other = EventFactory(learner=bob, kind="resource_downloaded", occurred_at=at)
    found = _ids(root.get("/admin/learners/event/?q=ada").content.decode())
    assert sorted(found) == sorted([str(mine.pk), str(keyed.pk)])
    filtered = _ids(
        root.get("/admin/learners/event/?kind__exact=resource_downloaded").content.decode()
    )
    assert filtered == [str(other.pk)]
    assert indexed_search(Event.objects.all(), "  ").count() == 3


def test_the_date_hierarchy_links_every_year_between_min_and_max(root):
    ada = LearnerFactory()
    for year in (2024, 2026):
        EventFactory(learner=ada, occurred_at=datetime(year, 5, 2, 9, tzinfo=UTC))
    body = root.get("/admin/learners/event/").content.decode()
    years = re.findall(r"occurred_at__year=(\d{4})", body)
    assert sorted(set(years)) == ["2024", "2025", "2026"]
    body = root.get("/admin/learners/event/?occurred_at__year=2026").content.decode()
    assert sorted(set(re.findall(r"occurred_at__month=(\d+)", body))) == ["5"]
    body = root.get(
        "/admin/learners/event/?occurred_at__year=2026&occurred_at__month=5"
    ).content.decode()
    assert sorted(set(re.findall(r"occurred_at__day=(\d+)", body))) == ["2"]


def test_the_locale_filter_lists_each_locale_once(root):
    for locale in ("fr", "en", "fr", "de"):
        LearnerFactory(locale=locale)
    body = root.get("/admin/learners/learner/").content.decode()
    assert re.findall(r"\?locale=(\w+)", body) == ["de", "en", "fr"]


@pytest.mark.parametrize(
    "url",
    [
        "/admin/learners/learner/",
        "/admin/learners/learner/?q=ada-7",
        "/admin/learners/learner/?marketing_opt_in__exact=1",
        "/admin/learners/event/",
        "/admin/learners/event/?q=ada-7",
        "/admin/learners/event/?kind__exact=login",
        "/admin/campaigns/send/",
        "/admin/campaigns/send/?q=ada-7",
        "/admin/campaigns/send/?status__exact=sent",
    ],
)
def test_no_list_query_scans_a_big_table(root, url):
    """With sequential scans priced out, every statement a list runs on learners, events and
    sends must still have an index plan: none reads the whole table (the bounded count aside,
    which stops after 10,001 rows whatever its plan)."""
    ada = LearnerFactory(external_id="ada-7")
    EventFactory(learner=ada, kind="login", occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    root.get(url)  # warm-up: sessions, content types
    with CaptureQueriesContext(connection) as queries:
        assert root.get(url).status_code == 200
    big = ("learners_learner", "learners_event", "campaigns_send")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for query in queries.captured_queries:
                sql = query["sql"]
                if not sql.startswith("SELECT") or not any(t in sql for t in big):
                    continue
                if sql.startswith("SELECT COUNT(*) FROM (SELECT") and "LIMIT 10001" in sql:
                    continue  # the paginator's bounded count: reads at most 10,001 rows
                cursor.execute("EXPLAIN " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                for table in big:
                    assert f"Seq Scan on {table}" not in plan, (sql, plan)
        finally:
            cursor.execute("SET enable_seqscan = on")


def test_the_row_checkbox_is_djangos_html_without_its_widget():
    learner = LearnerFactory(external_id="x<&>1")
    model_admin = LearnerAdmin(Learner, admin.site)
    ours = model_admin.action_checkbox(learner)
    assert ours == admin.ModelAdmin.action_checkbox(model_admin, learner)
    assert ours == (
        f'<input type="checkbox" name="_selected_action" value="{learner.pk}" '
        f'class="action-select" aria-label="Select this object for an action - '
        f'{escape(str(learner))}">'
    )
