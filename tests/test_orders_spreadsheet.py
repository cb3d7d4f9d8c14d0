"""The supplier's spreadsheet round trip: download, edit, upload, preview, apply all or nothing."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from portal.auth.permissions import Role
from portal.auth.services import Actor
from portal.db import set_context
from portal.orders import services as svc
from portal.orders.models import CommitmentEntry, LineState, Source
from tests.factories import (
    PASSWORD,
    make_member,
    make_order,
    make_supplier,
    make_tenant,
    make_tolerance,
    require_document,
)
from tests.helpers import PortalClient, csrf_from


def upload(client: PortalClient, data: bytes, name: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/orders/spreadsheet").text)
    return client.client.post(
        "/orders/spreadsheet",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def csv_bytes(fieldnames: list[str], items: list[dict[str, str]]) -> bytes:
    """Rows as a supplier saves them back from a spreadsheet program."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(items)
    return out.getvalue().encode()


def test_round_trip_with_a_bad_row_is_refused_then_applied_when_fixed(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)
    awaiting = make_order(session, tenant, supplier, [("100", "2.50", 14)])
    confirmed = make_order(session, tenant, supplier, [("40", "1.00", 10)])
    svc.accept_all(session, order=confirmed, expected_version=None, actor=Actor(None, "t", ""))
    other = make_order(session, tenant, make_supplier(session, tenant), [("7", "1.00", 5)])
    seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)

    download = client.get("/orders/spreadsheet.csv")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.data.decode("utf-8-sig"))))
    assert {r["order_number"] for r in rows} == {awaiting.number, confirmed.number}  # not another supplier's
    assert other.number not in download.data.decode()
    # Numbers as a person types them back: not the stored scale ("100.000", "2.5000").
    first = rows[[r["order_number"] for r in rows].index(awaiting.number)]
    assert (first["ordered_quantity"], first["unit_price"]) == ("100", "2.50")
    promised = rows[[r["order_number"] for r in rows].index(confirmed.number)]
    assert (promised["ordered_quantity"], promised["promised_quantity"], promised["unit_price"]) == ("40", "40", "1.00")
    (a_line,) = svc.order_lines(session, awaiting)
    (c_line,) = svc.order_lines(session, confirmed)
    split_a = dict(rows[[r["order_number"] for r in rows].index(awaiting.number)])
    split_b = dict(split_a)
    split_a.update(promised_quantity="60", promised_date=a_line.requested_date.isoformat())
    split_b.update(promised_quantity="40", promised_date=(a_line.requested_date + timedelta(days=1)).isoformat())
    moved = dict(rows[[r["order_number"] for r in rows].index(confirmed.number)])
    moved.update(promised_date=(c_line.requested_date + timedelta(days=1)).isoformat(), reason_code="")

    def as_csv(items: list[dict[str, str]]) -> bytes:
        return csv_bytes(list(rows[0].keys()), items)

    bad = dict(split_b, promised_date="next week")
    refused = upload(client, as_csv([split_a, bad, moved]), "lines.csv")
    assert refused.status_code == 422
    assert "Row 3: promised_date must be YYYY-MM-DD." in refused.text
    assert "Row 4:" in refused.text and "give a reason_code" in refused.text
    assert "Apply all" not in refused.text
    moved["reason_code"] = "transport"
    preview = upload(client, as_csv([split_a, split_b, moved]), "lines.csv")
    assert preview.status_code == 200 and "2 changes" in preview.text
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    assert session.get(type(a_line), a_line.id).state == LineState.AWAITING_RESPONSE  # preview saved nothing
    payload = re.search(r'name="payload" value="([^"]+)"', preview.text).group(1)
    applied = client.post("/orders/spreadsheet/apply", {"csrf_token": csrf_from(preview.text), "payload": payload})
    assert applied.status_code == 302
    session.expire_all()
    assert [s.quantity for s in svc.active_schedules(session, a_line)] == [60, 40]
    sources = (
        session.execute(
            select(CommitmentEntry.source).where(
                CommitmentEntry.line_id.in_([a_line.id, c_line.id]), CommitmentEntry.kind != "accepted"
            )
        )
        .scalars()
        .all()
    )
    assert sources and set(sources) == {Source.SPREADSHEET}
    forged = client.post("/orders/spreadsheet/apply", {"csrf_token": csrf_from(preview.text), "payload": payload + "x"})
    assert forged.status_code == 400


def test_a_partly_received_line_is_in_the_sheet_and_its_rest_can_be_promised_again(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)  # up to 2 days later: inside, confirmed at once
    order = make_order(session, tenant, supplier, [("100", "2.50", 14)])
    actor = Actor(None, "t", "")
    svc.accept_all(session, order=order, expected_version=None, actor=actor)
    (line,) = svc.order_lines(session, order)
    svc.record_receipt(session, order=order, line=line, quantity=Decimal("30"), received_on=line.requested_date,
                       actor=actor)  # fmt: skip
    seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    (row,) = csv.DictReader(io.StringIO(client.get("/orders/spreadsheet.csv").data.decode("utf-8-sig")))
    assert (row["order_number"], row["promised_quantity"]) == (order.number, "100")
    later = (line.requested_date + timedelta(days=2)).isoformat()
    came = dict(row, promised_quantity="30", promised_date=line.requested_date.isoformat(), reason_code="transport")
    rest = dict(row, promised_quantity="70", promised_date=later, reason_code="transport")
    preview = upload(client, csv_bytes(list(row.keys()), [came, rest]), "lines.csv")
    assert preview.status_code == 200 and "1 change" in preview.text
    payload = re.search(r'name="payload" value="([^"]+)"', preview.text).group(1)
    applied = client.post("/orders/spreadsheet/apply", {"csrf_token": csrf_from(preview.text), "payload": payload})
    assert applied.status_code == 302
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    schedules = svc.active_schedules(session, line)
    assert [(s.quantity, s.promised_date.isoformat()) for s in schedules] == [(30, came["promised_date"]), (70, later)]
    assert session.get(type(line), line.id).state == LineState.PARTIALLY_RECEIVED


def test_xlsx_download_and_upload(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)
    order = make_order(session, tenant, supplier, [("10", "1.00", 10)])
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    download = client.get("/orders/spreadsheet.xlsx")
    sheet = load_workbook(io.BytesIO(download.data)).worksheets[0]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    header = values[0]
    assert values[1][header.index("order_number")] == order.number
    (line,) = svc.order_lines(session, order)
    book = Workbook()
    out_sheet = book.active
    out_sheet.append(header)
    row = list(values[1])
    row[header.index("promised_quantity")] = 10
    row[header.index("promised_date")] = line.requested_date.isoformat()
    out_sheet.append(row)
    data = io.BytesIO()
    book.save(data)
    preview = upload(client, data.getvalue(), "answers.xlsx")
    assert preview.status_code == 200 and f"{order.number} line 1: no promise → 10 on" in preview.text
    assert upload(client, b"PK\x03\x04 not really a zip", "broken.xlsx").status_code == 422


def test_text_that_a_spreadsheet_would_run_as_a_formula_stays_text_and_comes_back_as_it_was(app, session):
    """An order number and a product name from the ERP that start like a formula: text in both downloads (an
    apostrophe before it in the CSV, a text cell in the XLSX), and the CSV's order number matches on upload."""
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)
    order = make_order(session, tenant, supplier, [("10", "1.00", 10)], number="=PO-1")
    (line,) = svc.order_lines(session, order)
    line.product_name = '=HYPERLINK("http://example.com","open")'
    session.flush()
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)

    text = client.get("/orders/spreadsheet.csv").data.decode("utf-8-sig")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert (row["order_number"], row["product_name"]) == ("'=PO-1", "'" + line.product_name)
    row.update(promised_quantity="10", promised_date=line.requested_date.isoformat())
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    preview = upload(client, out.getvalue().encode(), "answers.csv")
    assert preview.status_code == 200 and "=PO-1 line 1: no promise → 10 on" in preview.text

    sheet = load_workbook(io.BytesIO(client.get("/orders/spreadsheet.xlsx").data)).worksheets[0]
    cells = {cell.value: cell.data_type for cell in next(sheet.iter_rows(min_row=2, max_row=2))}
    assert cells["=PO-1"] == "s" and cells[line.product_name] == "s"  # "f" would be a formula


def test_the_download_has_a_row_per_active_delivery_in_order(session):
    """A line split into two deliveries gives two rows (its replaced promise none), an unanswered line one row
    with its promise empty; rows follow the order number, the line, then the delivery."""
    from decimal import Decimal

    from portal.orders.spreadsheet import export_rows
    from portal.web import PortalContext

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant, days_later=30)
    make_order(session, tenant, supplier, [("5", "1.00", 9)], number="PO-B")
    split = make_order(session, tenant, supplier, [("10", "1.00", 5), ("4", "2.00", 6)], number="PO-A")
    actor = Actor(None, "t", "")
    svc.accept_all(session, order=split, expected_version=None, actor=actor)
    first, second = svc.order_lines(session, split)
    day = first.requested_date
    svc.change_promise(session, order=split, line=first, reason_code="transport", comment="", expected_version=None,
                       actor=actor, deliveries=[svc.Delivery(Decimal("6"), day + timedelta(days=2)),
                                                svc.Delivery(Decimal("4"), day + timedelta(days=9))])  # fmt: skip
    context = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.SUPPLIER_ADMIN,
                            supplier_id=supplier.id, supplier_name=supplier.name)  # fmt: skip
    rows = export_rows(session, context)
    assert [(r[0], r[1], r[9], r[10]) for r in rows] == [
        ("PO-A", 1, Decimal("6.000"), (day + timedelta(days=2)).isoformat()),
        ("PO-A", 1, Decimal("4.000"), (day + timedelta(days=9)).isoformat()),
        ("PO-A", 2, Decimal("4.000"), second.requested_date.isoformat()),
        ("PO-B", 1, "", ""),
    ]
    assert rows[0][7:9] == [day.isoformat(), "confirmed"] and rows[3][8] == "awaiting_response"


@pytest.mark.parametrize("mode", ["warn", "block"])
def test_document_gating_holds_a_spreadsheets_answers_as_it_holds_the_answer_form(app, session, mode):
    """A supplier whose required documents are missing cannot confirm orders by spreadsheet where the tenant
    blocks confirmations: the preview says why and offers nothing to apply, and a preview made before the block
    is refused when applied, nothing saved. New dates for lines confirmed already are not confirmations. Where
    the tenant only warns, the answers are saved with the warning."""
    from portal.tenancy.models import DocumentGating, Tenant

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)
    awaiting = make_order(session, tenant, supplier, [("10", "1.00", 10)])
    confirmed = make_order(session, tenant, supplier, [("20", "1.00", 12)])
    svc.accept_all(session, order=confirmed, expected_version=None, actor=Actor(None, "t", ""))
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    rows = list(csv.DictReader(io.StringIO(client.get("/orders/spreadsheet.csv").data.decode("utf-8-sig"))))
    (a_line,) = svc.order_lines(session, awaiting)
    (c_line,) = svc.order_lines(session, confirmed)
    answer = dict(rows[[r["order_number"] for r in rows].index(awaiting.number)])
    answer.update(promised_quantity="10", promised_date=a_line.requested_date.isoformat())
    moved = dict(rows[[r["order_number"] for r in rows].index(confirmed.number)])
    moved.update(promised_date=(c_line.requested_date + timedelta(days=1)).isoformat(), reason_code="transport")

    def as_csv(items: list[dict[str, str]]) -> bytes:
        return csv_bytes(list(rows[0].keys()), items)

    # Previewed while the tenant does not gate yet: nothing stands in the way.
    before = upload(client, as_csv([answer]), "answers.csv")
    assert before.status_code == 200 and "Apply the change" in before.text
    require_document(session, tenant)
    session.get(Tenant, tenant.id).document_gating = DocumentGating(mode)
    session.flush()
    missing = "Required documents are missing or expired: ISO 9001 (missing)."

    payload = re.search(r'name="payload" value="([^"]+)"', before.text).group(1)
    applied = client.post("/orders/spreadsheet/apply", {"csrf_token": csrf_from(before.text), "payload": payload})
    session.expire_all()
    line_state = session.get(type(a_line), a_line.id).state
    if mode == "block":
        assert applied.status_code == 422 and missing in applied.text and "confirmations are blocked" in applied.text
        assert line_state == LineState.AWAITING_RESPONSE
        refused = upload(client, as_csv([answer, moved]), "answers.csv")
        assert refused.status_code == 422 and missing in refused.text and "Apply all" not in refused.text
        dates_only = upload(client, as_csv([moved]), "dates.csv")
        assert dates_only.status_code == 200 and "Apply the change" in dates_only.text
        assert missing not in dates_only.text
    else:
        assert applied.status_code == 302 and line_state == LineState.CONFIRMED
        assert f"{missing} Please upload them under Compliance." in client.get(applied.headers["Location"]).text


def test_a_line_the_buyer_revised_after_the_download_is_refused_by_name_not_answered_with_the_old_terms(app, session):
    """A promise in the file was made to the terms it was downloaded with: once the buyer has revised the line, the
    row is refused (naming the row and the new terms) even where the promise was left as it was, which would
    otherwise read as a new answer to the revised line. The other rows go through once the file is fresh."""
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)
    order = make_order(session, tenant, supplier, [("100", "2.50", 14), ("40", "1.00", 10)])
    svc.accept_all(session, order=order, expected_version=None, actor=Actor(None, "t", ""))
    first, second = svc.order_lines(session, order)
    seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    rows = list(csv.DictReader(io.StringIO(client.get("/orders/spreadsheet.csv").data.decode("utf-8-sig"))))
    later = first.requested_date + timedelta(days=3)
    svc.revise_line(
        session, order=order, line=first, terms=svc.LineTerms(first.quantity, later, first.unit_price),
        comment="", expected_version=None, actor=Actor(None, "buyer", ""),
    )  # fmt: skip
    one_day_later = (second.requested_date + timedelta(days=1)).isoformat()
    moved = dict(rows[1], promised_date=one_day_later, reason_code="transport")
    refused = upload(client, csv_bytes(list(rows[0]), [rows[0], moved]), "lines.csv")
    assert refused.status_code == 422
    assert (
        f"Row 2: the buyer changed {order.number} line 1 since the file was downloaded (requested on {later}, not "
        f"{rows[0]['requested_date']}): download the file again"
    ) in refused.text.replace("&#39;", "'")
    assert "Apply all" not in refused.text
    fresh = list(csv.DictReader(io.StringIO(client.get("/orders/spreadsheet.csv").data.decode("utf-8-sig"))))
    answer = dict(fresh[0], promised_quantity="100", promised_date=later.isoformat())
    preview = upload(client, csv_bytes(list(fresh[0]), [answer, moved]), "lines.csv")
    assert preview.status_code == 200 and "2 changes" in preview.text
