from decimal import Decimal

import pytest
from django.core.management import call_command

from expansion.commerce.models import Order, OrderLine
from learners.models import Learner

CSV = """InvoiceNo,InvoiceDate,CustomerID,TotalPrice
536365,2010-12-01,17850,139.12
536366,2010-12-01,17850,22.200000000000003
536367,2010-12-02,13047,0
536368,2010-12-02,,10.00
536369,2010-12-03,13047.0,5.5
"""


@pytest.mark.django_db
def test_retail_invoices_import_is_idempotent(tmp_path, capsys):
    path = tmp_path / "invoices.csv"
    path.write_text(CSV)
    call_command("import_retail_invoices", str(path))
    assert "2 customers, 3 new orders, 0 updated, 2 rows skipped" in capsys.readouterr().out
    assert sorted(Learner.objects.values_list("external_id", flat=True)) == [
        "retail-13047",
        "retail-17850",
    ]
    assert sorted(OrderLine.objects.values_list("order__external_id", "unit_price")) == [
        ("retail-536365", Decimal("139.12")),
        ("retail-536366", Decimal("22.20")),
        ("retail-536369", Decimal("5.50")),
    ]
    call_command("import_retail_invoices", str(path))
    assert "0 new orders, 3 updated" in capsys.readouterr().out
    assert Order.objects.count() == 3
