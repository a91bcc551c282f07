"""``table_replaced``: the rows replaced, the indexes, keys and sequence rebuilt exactly as
the migrations made them, readers never blocked by the load, nothing kept on an error,
refused where it cannot be safe."""

import psycopg
import pytest
from django.db import connection, transaction

from expansion.commerce.affinity import affinity_refresh
from expansion.commerce.models import ProductAffinity
from expansion.core.db.bulk import table_replaced
from tests.factories.expansion import OrderFactory, OrderLineFactory, ProductFactory

TABLE = ProductAffinity._meta.db_table


def dsn():
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k in {"dbname", "user", "host", "port", "password"}}
    )


def catalogue():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY conname",
            [TABLE],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY 1", [TABLE]
        )
        return constraints, cursor.fetchall()


@pytest.fixture
def pair(db):
    a, b = ProductFactory(), ProductFactory()
    for _ in range(2):
        order = OrderFactory()
        OrderLineFactory(order=order, product=a)
        OrderLineFactory(order=order, product=b)
    return a, b


def test_a_refresh_keeps_every_index_and_constraint_as_the_migrations_made_it(pair):
    before = catalogue()
    names = {name for name, _ in before[1]}
    assert {"affinity_product_lift_idx", "affinity_unique_pair"} <= names
    affinity_refresh()
    assert catalogue() == before
    assert ProductAffinity.objects.count() == 2


def test_an_error_inside_keeps_the_old_rows_and_indexes(pair):
    affinity_refresh()
    before = catalogue()
    seen = []

    def load_and_fail():
        with transaction.atomic(), connection.cursor() as cursor:
            with table_replaced(cursor, TABLE) as staging:
                cursor.execute(f"SELECT COUNT(*) FROM {staging}")
                seen.append((cursor.fetchone()[0], ProductAffinity.objects.count()))
                raise RuntimeError("load failed")

    with pytest.raises(RuntimeError, match="load failed"):
        load_and_fail()
    assert seen == [(0, 2)]  # loading into an empty table; the live one still whole
    assert ProductAffinity.objects.count() == 2
    assert catalogue() == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_class WHERE relname LIKE %s", [TABLE + "_load_%"])
        assert cursor.fetchone()[0] == 0  # the staging table went with the transaction


@pytest.mark.django_db(transaction=True)
def test_readers_are_not_blocked_while_the_new_table_loads():
    a, b = ProductFactory(), ProductFactory()
    for _ in range(2):
        order = OrderFactory()
        OrderLineFactory(order=order, product=a)
        OrderLineFactory(order=order, product=b)
    affinity_refresh()
    reader = psycopg.connect(dsn())
    try:
        reader.execute("SET lock_timeout = 2000")
        with transaction.atomic(), connection.cursor() as cursor:
            with table_replaced(cursor, TABLE) as staging:
                cursor.execute(f"INSERT INTO {staging} SELECT * FROM {TABLE} LIMIT 1")
                # Another session reads the old rows while this one loads (no lock taken yet).
                assert reader.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone() == (2,)
                reader.rollback()
        assert reader.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone() == (1,)
    finally:
        reader.close()
        ProductAffinity.objects.all().delete()


def test_the_sequence_and_privileges_carry_over(pair):
    with connection.cursor() as cursor:
        cursor.execute("DROP ROLE IF EXISTS affinity_reader")
        cursor.execute("CREATE ROLE affinity_reader")
        cursor.execute(f"GRANT SELECT ON {TABLE} TO affinity_reader")
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        (sequence,) = cursor.fetchone()
    try:
        pairs = affinity_refresh().pairs
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
            assert cursor.fetchone() == (sequence,)
            cursor.execute("SELECT has_table_privilege('affinity_reader', %s, 'SELECT')", [TABLE])
            assert cursor.fetchone() == (True,)
        row = ProductAffinity.objects.get(id=1)
        row.pk, row.other_id = None, row.other_id + 10**6
        row.save()
        assert row.pk == pairs + 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"REVOKE ALL ON {TABLE} FROM affinity_reader")
            cursor.execute("DROP ROLE affinity_reader")


def test_the_unique_pair_is_enforced_again_after_the_load(pair):
    affinity_refresh()
    row = ProductAffinity.objects.first()
    row.pk = None
    with pytest.raises(Exception, match="affinity_unique_pair"), transaction.atomic():
        row.save()


@pytest.mark.django_db(transaction=True)
def test_refused_outside_a_transaction():
    with connection.cursor() as cursor:
        with pytest.raises(RuntimeError, match="inside transaction.atomic"):
            with table_replaced(cursor, TABLE):
                pass


def test_refused_for_a_table_others_refer_to(db):
    with connection.cursor() as cursor:
        with pytest.raises(ValueError, match="referred to by a foreign key"):
            with transaction.atomic(), table_replaced(cursor, "expansion_product"):
                pass
