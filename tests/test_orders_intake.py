"""Order intake from CSV: through the buyer's form and the CLI; all or nothing."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from portal.auth.permissions import Role
from portal.db import set_context
from portal.orders.models import PurchaseOrder, PurchaseOrderLine
from tests.conftest import tenant_session
from tests.factories import PASSWORD, make_company_with_warehouse, make_member, make_supplier, make_tenant
from tests.helpers import PortalClient, csrf_from

HEADER = (
    "order_number,supplier_code,warehouse_code,order_date,currency,line,product_code,product_name,"
    "supplier_product_code,quantity,unit,unit_price,requested_date\n"
)


def csv_for(supplier_code: str, warehouse_code: str, bad_row: bool = False) -> bytes:
    rows = [
        f"PO-1,{supplier_code},{warehouse_code},2026-11-20,EUR,1,P-1,Bolt,AC-1,100,pc,2.50,2026-12-05",
        f"PO-1,{supplier_code},{warehouse_code},2026-11-20,EUR,2,P-2,Nut,,40,pc,0.10,2026-12-10",
        f"PO-2,{supplier_code},{warehouse_code},2026-11-21,EUR,1,P-3,Washer,,1000,pc,0.02,2026-12-01",
    ]
    if bad_row:
        rows.append(f"PO-3,NOPE,{warehouse_code},2026-13-01,EUR,x,P-4,Pin,,-5,pc,1,2026-12-01")
    return (HEADER + "\n".join(rows) + "\n").encode()


def test_buyer_imports_orders_and_a_bad_row_refuses_the_whole_file(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    _, warehouse = make_company_with_warehouse(session, tenant)
    buyer = make_member(session, tenant, Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)

    def upload(data: bytes):  # type: ignore[no-untyped-def]
        token = csrf_from(client.get("/orders/import").text)
        return client.client.post(
            "/orders/import",
            data={"csrf_token": token, "file": (io.BytesIO(data), "po.csv")},
            content_type="multipart/form-data",
        )

    refused = upload(csv_for(supplier.code, warehouse.code, bad_row=True))
    assert refused.status_code == 422 and "Nothing was imported." in refused.text
    assert "Row 5: no supplier with code &#39;NOPE&#39;" in refused.text
    assert "order_date must be YYYY-MM-DD" in refused.text and "quantity must be a number above zero" in refused.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(func.count()).select_from(PurchaseOrder)).scalar_one() == 0
    assert upload(b"\xff\xfe not text").status_code == 422
    done = upload(csv_for(supplier.code, warehouse.code))
    assert done.status_code == 302
    orders = session.execute(select(PurchaseOrder).order_by(PurchaseOrder.number)).scalars().all()
    assert [o.number for o in orders] == ["PO-1", "PO-2"] and orders[0].buyer_id == buyer.user.id
    assert str(orders[0].total_value) == "254.0000" and str(orders[0].due_date) == "2026-12-05"
    assert session.execute(select(func.count()).select_from(PurchaseOrderLine)).scalar_one() == 3
    again = upload(csv_for(supplier.code, warehouse.code))
    assert again.status_code == 422 and "order PO-1 exists already" in again.text


def test_cli_import(committed_app, committed_db, tmp_path):
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        supplier = make_supplier(s, tenant)
        _, warehouse = make_company_with_warehouse(s, tenant)
        slug, code, wcode, tenant_id = tenant.slug, supplier.code, warehouse.code, tenant.id
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_bytes(csv_for(code, wcode, bad_row=True))
    good.write_bytes(csv_for(code, wcode))
    runner = committed_app.test_cli_runner()
    refused = runner.invoke(args=["import-orders", str(bad), "--tenant", slug])
    assert refused.exit_code != 0 and "Row 5" in refused.output
    done = runner.invoke(args=["import-orders", str(good), "--tenant", slug])
    assert done.exit_code == 0 and "2 orders with 3 lines imported" in done.output
    with tenant_session(committed_db, tenant_id) as s:
        assert s.execute(select(func.count()).select_from(PurchaseOrder)).scalar_one() == 2


def test_buyer_creates_an_order_by_form_with_errors_named_by_line(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant, "Form Supplier")
    _, warehouse = make_company_with_warehouse(session, tenant)
    buyer = make_member(session, tenant, Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    header = {
        "order_number": "PO-F1",
        "supplier_code": supplier.code,
        "warehouse_code": warehouse.code,
        "order_date": "2026-11-20",
        "currency": "EUR",
    }
    line = {
        "product_code-1": "P-1",
        "product_name-1": "Bolt",
        "quantity-1": "100",
        "unit-1": "pc",
        "unit_price-1": "2.5",
        "requested_date-1": "2026-12-05",
    }
    empty = client.submit("/orders/new", {**header, "unit-1": "pc", "unit-2": "pc"})  # rows as the page posts them
    assert empty.status_code == 422 and "Enter at least one line." in empty.text and "Correct the" not in empty.text
    assert "Row 2" not in empty.text and "must be" not in empty.text  # not the importer's words about no line
    # Nothing filled in: each of the order's fields says what it needs, once, beside it (not once per line).
    nothing = client.submit("/orders/new", {"order_date": "", "currency": "EUR", "unit-1": "pc"})
    assert nothing.status_code == 422
    for name, message in (("order_number", "Enter the order number."), ("supplier_code", "Choose the supplier."),
                          ("warehouse_code", "Choose where the order ships to."),
                          ("order_date", "Enter the order date.")):  # fmt: skip
        assert nothing.text.count(message) == 1
        assert f'<span class="error" id="{name}-error">{message}</span>' in nothing.text
    assert "Enter at least one line." in nothing.text and "order_number" not in nothing.text.split("<form")[0]
    bad = client.submit(
        "/orders/new",
        {
            **header,
            **line,
            "product_code-2": "P-2",
            "product_name-2": "Nut",
            "quantity-2": "-1",
            "unit_price-2": "1",
            "requested_date-2": "tomorrow",
        },
    )
    assert bad.status_code == 422
    line_two = '<p class="error" id="line-2-error">Line 2: Enter a quantity above zero. Enter the requested date.</p>'
    assert line_two in bad.text
    assert 'id="line-1-error"' not in bad.text and 'class="error" id="order_number-error"' not in bad.text
    assert 'value="Bolt"' in bad.text  # the input is kept
    done = client.submit("/orders/new", {**header, **line})
    assert done.status_code == 302
    assert "Form Supplier sees it now" in client.get(done.headers["Location"]).text
    again = client.submit("/orders/new", {**header, **line})
    assert again.status_code == 422
    assert '<span class="error" id="order_number-error">Order PO-F1 exists already.</span>' in again.text
    set_context(session, tenant_id=tenant.id)
    order = session.execute(select(PurchaseOrder).where(PurchaseOrder.number == "PO-F1")).scalar_one()
    assert order.buyer_id == buyer.user.id and str(order.total_value) == "250.0000"


def upload_receipts(client: PortalClient, text: str):  # type: ignore[no-untyped-def]
    """Upload ``text`` as a receipts CSV through the import form."""
    token = csrf_from(client.get("/orders/receipts/import").text)
    return client.client.post(
        "/orders/receipts/import",
        data={"csrf_token": token, "file": (io.BytesIO(text.encode()), "r.csv")},
        content_type="multipart/form-data",
    )


def test_receipts_import_is_all_or_nothing(app, session):
    from decimal import Decimal

    from portal.auth.services import Actor
    from portal.orders import services as svc
    from portal.orders.models import LineState
    from tests.factories import make_order

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    order = make_order(session, tenant, supplier, [("100", "1", 5), ("40", "1", 9)])
    svc.accept_all(session, order=order, expected_version=None, actor=Actor(None, "t", ""))
    buyer = make_member(session, tenant, Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)

    head = "order_number,line,quantity,received_on,erp_ref\n"
    refused = upload_receipts(
        client,
        head + f"{order.number},1,60,2026-11-25,WH/IN/1\n{order.number},7,5,2026-11-25,\n"
        f"NOPE,1,5,2026-11-25,\n{order.number},2,x,25.11.2026,\n",
    )
    assert refused.status_code == 422
    assert f"Row 3: order {order.number} has no line &#39;7&#39;." in refused.text
    assert "Row 4: no order &#39;NOPE&#39;." in refused.text and "Row 5: quantity must be a number" in refused.text
    session.expire_all()
    assert all(line.received_quantity == 0 for line in svc.order_lines(session, order))  # nothing kept
    done = upload_receipts(client, head + f"{order.number},1,60,2026-11-25,WH/IN/1\n{order.number},2,40,2026-11-26,\n")
    assert done.status_code == 302
    session.expire_all()
    first, second = svc.order_lines(session, order)
    assert first.received_quantity == Decimal("60") and first.state == LineState.PARTIALLY_RECEIVED
    assert second.state == LineState.RECEIVED

    # The same file again, then an export that repeats it and adds one: a referenced receipt counts once.
    again = upload_receipts(
        client, head + f"{order.number},1,60,2026-11-25,WH/IN/1\n{order.number},1,10,2026-11-27,WH/IN/2\n"
    )
    assert again.status_code == 302
    landed = client.get(again.headers["Location"]).text
    assert "1 receipt recorded. 1 receipt was recorded already (by their reference) and left out." in landed
    twice = upload_receipts(
        client, head + f"{order.number},1,5,2026-11-28,WH/IN/3\n{order.number},1,5,2026-11-28,WH/IN/3\n"
    )
    assert twice.status_code == 422 and "Row 3: reference &#39;WH/IN/3&#39; is on row 2 too." in twice.text
    session.expire_all()
    assert first.received_quantity == Decimal("70")


def test_imported_receipts_name_the_ship_notice_their_goods_came_with(app, session):
    """The optional ``ship_notice`` column: a named notice is settled by its goods, not the earlier one the dates
    would choose; a number that fits no notice of the row's order and line is the row's error, and the whole
    file is refused."""
    from datetime import date, timedelta
    from decimal import Decimal

    from portal.auth.services import Actor
    from portal.orders import services as svc
    from portal.orders.models import Receipt, ShipNoticeState
    from tests.factories import make_order

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    order = make_order(session, tenant, supplier, [("100", "1", 5), ("40", "1", 9)])
    seller = Actor(None, "t", "")
    svc.accept_all(session, order=order, expected_version=None, actor=seller)
    first, second = svc.order_lines(session, order)
    monday = date.today() - timedelta(days=7)
    early, later = (
        svc.create_ship_notice(session, order=order, quantities={first.id: Decimal("50")},
                               shipment=svc.ShipmentInput(monday + timedelta(days=n), monday + timedelta(days=n + 2)),
                               expected_version=None, actor=seller)
        for n in (0, 1)
    )  # fmt: skip
    buyer = make_member(session, tenant, Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)

    head = "order_number,line,quantity,received_on,ship_notice\n"
    day = (monday + timedelta(days=3)).isoformat()
    refused = upload_receipts(
        client, head + f"{order.number},1,50,{day},{later.number}\n{order.number},2,40,{day},{later.number}\n"
    )
    assert refused.status_code == 422
    assert f"Row 3: Ship notice {later.number} does not ship line 2." in refused.text
    future = upload_receipts(client, head + f"{order.number},2,40,2099-01-04,\n")
    assert future.status_code == 422 and "Row 2: received_on 2099-01-04 is in the future." in future.text
    session.expire_all()
    assert session.execute(select(Receipt.id).where(Receipt.tenant_id == tenant.id)).all() == []  # nothing kept

    done = upload_receipts(
        client, head + f"{order.number},1,50,{day},{later.number.lower()}\n{order.number},2,40,{day},\n"
    )
    assert done.status_code == 302
    session.expire_all()
    assert (early.state, later.state) == (ShipNoticeState.SENT, ShipNoticeState.RECEIVED)
    named = session.execute(
        select(Receipt.line_id, Receipt.ship_notice_id).where(Receipt.tenant_id == tenant.id).order_by(Receipt.id)
    ).all()
    assert [tuple(row) for row in named] == [(first.id, later.id), (second.id, None)]
