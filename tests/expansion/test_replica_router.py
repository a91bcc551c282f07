"""The read-replica router: lag-tolerant reads from DATABASE_REPLICA_URL, everything else from
the primary. Proven with a second real database on the same PostgreSQL: rows present on one
database only show which one served each read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from urllib.parse import quote

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction

from expansion.core.db.router import ReplicaRouter, replica_alias, replica_reads
from learners.models import Learner
from tests.workers import ROOT, database_url

CHILD = """
import json
import django
django.setup()
from datetime import date, timedelta
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from expansion.commerce.metrics import revenue_metrics
from expansion.core.db.router import replica_alias, replica_reads
from learners.ingest import events_ingest
from learners.models import Learner

out = {}
client = Client()
client.force_login(get_user_model().objects.get(username="replica-admin"))
with CaptureQueriesContext(connections["default"]) as primary, \\
        CaptureQueriesContext(connections["replica"]) as replica:
    body = client.get("/admin/learners/learner/").content.decode()
out["list_shows"] = sorted(x for x in ("on-both", "only-on-replica", "only-on-primary")
                           if x in body)
out["list_learner_queries"] = {
    "primary": sum("learners_learner" in q["sql"] for q in primary.captured_queries),
    "replica": sum("learners_learner" in q["sql"] for q in replica.captured_queries),
}
body = client.get("/admin/learners/learner/?q=only-on-replica").content.decode()
out["search_finds_replica_row"] = 'name="_selected_action"' in body
today = timezone.now().date()
out["metrics_orders"] = sum(
    r.orders for r in revenue_metrics(period="month", first=today - timedelta(days=40), last=today))
with replica_reads():
    out["outside_atomic"] = replica_alias()
    out["read_in_block"] = sorted(Learner.objects.values_list("external_id", flat=True))
    Learner.objects.create(external_id="written-in-block", email="w@example.org")
    with transaction.atomic():
        out["inside_atomic"] = replica_alias()
        out["read_in_atomic"] = sorted(Learner.objects.values_list("external_id", flat=True))
out["read_outside_block"] = sorted(Learner.objects.values_list("external_id", flat=True))
result = events_ingest(items=[{"idempotency_key": "replica-test-1", "learner": "on-both",
                               "kind": "login", "occurred_at": timezone.now().isoformat()}])
out["ingested"] = result.accepted
print(json.dumps(out))
"""


def test_without_a_replica_every_read_is_the_primarys(db):
    with replica_reads() as alias:
        assert alias == "default"
        assert replica_alias() == "default"
        assert Learner.objects.all().db == "default"
    assert ReplicaRouter().db_for_write(Learner) == "default"
    assert ReplicaRouter().allow_migrate("replica", "learners") is False
    assert ReplicaRouter().allow_migrate("default", "learners") is True


def _server(dbname: str) -> dict:
    db = connection.settings_dict
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "dbname": dbname,
    }


def _url(dbname: str) -> str:
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        return f"postgres://{db['USER']}@{quote(host, safe='')}/{dbname}"
    return f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{dbname}"


@pytest.mark.django_db(transaction=True)
def test_lists_and_metrics_read_the_replica_and_writes_never_go_there():
    get_user_model().objects.create_superuser("replica-admin", "r@example.org", "replica-pw-1")
    Learner.objects.create(external_id="on-both", email="both@example.org")
    primary_name = connection.settings_dict["NAME"]
    replica_name = f"growth_replica_{uuid.uuid4().hex[:8]}"
    # The "replica": a copy of the test database as it is now (schema and committed rows).
    for alias in connections:
        connections[alias].close()
    with psycopg.connect(**_server("postgres"), autocommit=True) as admin:
        # A template must have no other session: end those that earlier tests' worker
        # processes or threads left on this run's own test database.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [primary_name],
        )
        admin.execute(f'CREATE DATABASE "{replica_name}" TEMPLATE "{primary_name}"')
    try:
        with psycopg.connect(**_server(replica_name), autocommit=True) as replica:
            replica.execute(
                "INSERT INTO learners_learner (external_id, email, name, time_zone, locale,"
                " marketing_opt_in, attributes, role, created_at, updated_at) VALUES"
                " ('only-on-replica', 'r1@example.org', '', 'UTC', 'en', true, '{}', 'member',"
                " now(), now())"
            )
            replica.execute(
                "INSERT INTO expansion_order (external_id, learner_id, placed_at, currency,"
                " created_at, updated_at) SELECT 'replica-order', id, now(), 'USD', now(), now()"
                " FROM learners_learner WHERE external_id = 'only-on-replica'"
            )
            replica.execute(
                "INSERT INTO expansion_product (sku, name, kind, price, currency, is_active,"
                " created_at, updated_at) VALUES ('R-1', 'Replica course', 'course', 10, 'USD',"
                " true, now(), now())"
            )
            replica.execute(
                "INSERT INTO expansion_orderline (order_id, external_id, product_id, quantity,"
                " unit_price, refunded_amount) SELECT o.id, '1', p.id, 1, 10, 0"
                " FROM expansion_order o, expansion_product p"
            )
        Learner.objects.create(external_id="only-on-primary", email="p1@example.org")
        proc = subprocess.run(
            [sys.executable, "-c", CHILD],
            cwd=ROOT,
            env=os.environ
            | {"DATABASE_URL": database_url(), "DATABASE_REPLICA_URL": _url(replica_name)},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])

        # The learner list and its search were served by the replica alone.
        assert out["list_shows"] == ["on-both", "only-on-replica"]
        assert out["list_learner_queries"]["primary"] == 0
        assert out["list_learner_queries"]["replica"] >= 2  # the page and its count
        assert out["search_finds_replica_row"] is True
        # The metrics' raw SQL too: the order exists on the replica only.
        assert out["metrics_orders"] == 1
        # In replica_reads, outside a transaction: the replica; inside one: the primary.
        assert out["outside_atomic"] == "replica"
        assert out["read_in_block"] == ["on-both", "only-on-replica"]
        assert out["inside_atomic"] == "default"
        assert out["read_in_atomic"] == ["on-both", "only-on-primary", "written-in-block"]
        # Outside replica_reads, the primary.
        assert out["read_outside_block"] == ["on-both", "only-on-primary", "written-in-block"]
        assert out["ingested"] == 1

        # Writes (an ORM create inside replica_reads, the ingestion path) reached the primary
        # and never the replica.
        assert Learner.objects.filter(external_id="written-in-block").count() == 1
        with psycopg.connect(**_server(replica_name)) as replica:
            written = replica.execute(
                "SELECT COUNT(*) FROM learners_learner WHERE external_id = 'written-in-block'"
            ).fetchone()[0]
            events = replica.execute(
                "SELECT COUNT(*) FROM learners_event WHERE idempotency_key = 'replica-test-1'"
            ).fetchone()[0]
        assert (written, events) == (0, 0)
        with transaction.atomic():
            assert Learner.objects.get(external_id="on-both").events.count() == 1
    finally:
        with psycopg.connect(**_server("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{replica_name}" WITH (FORCE)')
