"""``table_replaced``: the rows replaced, the indexes and keys rebuilt exactly as the
migrations made them, nothing kept on an error, refused where it cannot be safe."""

import pytest
from django.db import connection, transaction

from expansion.commerce.affinity import affinity_refresh
from expansion.commerce.models import ProductAffinity
from expansion.core.db.bulk import table_replaced
from tests.factories.expansion import OrderFactory, OrderLineFactory, ProductFactory

TABLE = ProductAffinity._meta.db_table


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
        with transaction.atomic(), connection.cursor() as cursor, table_replaced(cursor, TABLE):
            seen.append(ProductAffinity.objects.count())
            raise RuntimeError("load failed")

    with pytest.raises(RuntimeError, match="load failed"):
        load_and_fail()
    assert seen == [0]  # emptied inside
    assert ProductAffinity.objects.count() == 2
    assert catalogue() == before


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
