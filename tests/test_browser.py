"""Real Chromium (Debian's package, driven by Playwright) against a live portal."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from portal.auth import services
from portal.auth.permissions import Role
from portal.db import set_context
from tests.conftest import service_missing, tenant_session
from tests.factories import make_member, make_supplier, make_tenant

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_server(committed_app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, committed_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        service_missing("Chromium", f"{CHROMIUM} not found")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def code_at(secret: str, steps_ahead: int) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def test_supplier_accepts_invitation_enrols_signs_in_and_switches_customer(
    live_server, browser, committed_app, committed_db
):
    with tenant_session(committed_db, None) as s:
        first, second = make_tenant(s, "Northwind Browser"), make_tenant(s, "Harbor Browser")
        supplier_first = make_supplier(s, first, "Acme Browser")
        supplier_second = make_supplier(s, second, "Acme Browser")
        admin = make_member(s, first, Role.TENANT_ADMIN)
        set_context(s, tenant_id=first.id)
        invitation = services.create_invitation(
            s,
            tenant_id=first.id,
            inviter_role=Role.TENANT_ADMIN,
            email="anna@acme-browser.example",
            role=Role.SUPPLIER_ADMIN,
            supplier_id=supplier_first.id,
            actor=services.Actor(admin.user.id, admin.email, "127.0.0.1"),
        )
        token = services.invitation_token(committed_app.config["SECRET_KEY"], invitation)

    page = browser.new_page()
    page.goto(f"{live_server}/invitations/{token}")
    assert "Join Northwind Browser" in page.inner_text("h1")
    page.fill("#name", "Anna Acme")
    page.fill("#new_password", "amber-kettle-forest-19")
    page.fill("#confirm_password", "amber-kettle-forest-19")
    page.click("button[type=submit]")
    page.wait_for_url("**/login/enrol")
    assert page.locator(".qr svg").count() == 1
    secret = page.inner_text("#totp-secret").replace(" ", "")  # shown in groups of four
    page.fill("#code", code_at(secret, 0))
    page.click("button[type=submit]")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.click("text=I have stored them, continue")
    assert "Acme Browser" in page.inner_text("h1")

    # A second customer for the same person (as if Harbor had invited her too).
    with tenant_session(committed_db, second.id) as s:
        from sqlalchemy import select

        from portal.auth.models import Membership, User

        user = s.execute(select(User).where(User.email == "anna@acme-browser.example")).scalar_one()
        s.add(Membership(tenant_id=second.id, user_id=user.id, role=Role.SUPPLIER_USER, supplier_id=supplier_second.id))

    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.fill("#email", "anna@acme-browser.example")
    page.fill("#password", "amber-kettle-forest-19")
    page.click("button[type=submit]")
    page.wait_for_url("**/login/verify")
    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert "That code is not valid" in page.inner_text(".error")
    fresh = code_at(secret, 1)
    page.fill("#code", fresh)
    page.click("button[type=submit]")
    page.wait_for_url("**/choose**")
    page.click("button.choice:has-text('Harbor Browser')")
    page.wait_for_url(f"{live_server}/")
    assert "Harbor Browser" in page.inner_text("main")
    # The header switcher changes customer (it submits itself on change).
    page.select_option("#switch-customer", label="Northwind Browser — as Acme Browser")
    page.wait_for_function("document.querySelector('main').innerText.includes('working for Northwind Browser')")
    assert page.locator("nav.mainnav >> text=Team").count() == 1

    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.fill("#email", "anna@acme-browser.example")
    page.fill("#password", "amber-kettle-forest-19")
    page.click("button[type=submit]")
    page.fill("#code", fresh)  # the same code again: a replay
    page.click("button[type=submit]")
    assert "used already" in page.inner_text(".error")
    page.screenshot(path=str(committed_app.instance_path) + "/browser-replay.png")


def sign_in_browser(page, base: str, email: str, password: str, code: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/verify")
    page.fill("#code", code)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def sign_in_demo(page, base: str, email: str, *, customer: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Sign a demo person in through the forms, choosing ``customer`` when they work for several."""
    from portal.demo import DEMO_PASSWORD, demo_secret

    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.fill("#code", pyotp.TOTP(demo_secret(email)).now())
    page.click("button[type=submit]")
    if customer:
        page.click(f"text={customer}")
    page.wait_for_url(f"{base}/")


def test_supplier_answers_buyer_approves_supplier_ships(live_server, browser, committed_db, committed_app, tmp_path):
    from datetime import date, timedelta

    from portal.orders import services as svc
    from tests.factories import PASSWORD, make_order, make_tolerance

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s, "Northwind Journey")
        supplier = make_supplier(s, tenant, "Acme Journey")
        make_tolerance(s, tenant)
        order = make_order(s, tenant, supplier, [("100", "2.50", 14), ("40", "10.00", 21), ("12", "4.00", 10)])
        seller = make_member(s, tenant, Role.SUPPLIER_USER, supplier=supplier)
        buyer = make_member(s, tenant, Role.BUYER)
        first, second, third = svc.order_lines(s, order)
        ids = (first.id, second.id, third.id)
        split_date = (first.requested_date + timedelta(days=1)).isoformat()
        late = (third.requested_date + timedelta(days=8)).isoformat()
        order_id, number = order.id, order.number
        seller_email, seller_secret, buyer_email, buyer_secret = seller.email, seller.secret, buyer.email, buyer.secret

    page = browser.new_page()
    sign_in_browser(page, live_server, seller_email, PASSWORD, code_at(seller_secret, 0))
    page.click("nav.mainnav >> text=Orders")
    page.click(f"text={number}")
    # Line 1: split into 60 + 40. Typing a delivery chooses "Change" by itself.
    page.click(f"#answer-{ids[0]} summary")
    page.fill(f"input[name=line-{ids[0]}-qty-1]", "60")
    assert page.is_checked(f"input[name=line-{ids[0]}-action][value=change]")
    page.fill(f"input[name=line-{ids[0]}-qty-2]", "40")
    page.fill(f"input[name=line-{ids[0]}-date-2]", split_date)
    # Three delivery rows show; "Add a delivery" shows one more at a time.
    assert not page.is_visible(f"input[name=line-{ids[0]}-qty-4]")
    page.click(f"#answer-{ids[0]} .add-delivery")
    assert page.is_visible(f"input[name=line-{ids[0]}-qty-4]")
    assert not page.is_visible(f"input[name=line-{ids[0]}-qty-5]")
    # Line 2: reject (choosing the reason chooses "Reject").
    page.select_option(f"select[name=line-{ids[1]}-reason]", "discontinued")
    assert page.is_checked(f"input[name=line-{ids[1]}-action][value=reject]")
    # Line 3: a date outside the tolerance.
    page.check(f"input[name=line-{ids[2]}-action][value=change]")
    page.click(f"#answer-{ids[2]} summary")
    page.fill(f"input[name=line-{ids[2]}-date-1]", late)
    page.click("text=Check against the tolerance")
    assert "Inside the tolerance" in page.inner_text(f"#answer-{ids[0]}")
    assert "8 days after the requested date" in page.inner_text(f"#answer-{ids[2]}")
    page.click("text=Submit answers")
    assert "1 line confirmed; 2 lines sent to the buyer" in page.inner_text(".flash")
    page.click("text=Sign out")

    sign_in_browser(page, live_server, buyer_email, PASSWORD, code_at(buyer_secret, 0))
    page.click("nav.mainnav >> text=Response queue")
    # The click returns once the queue starts loading; wait for its rows rather than count a half-parsed page.
    expect(page.locator("input[name=request_id]")).to_have_count(2)
    for box in page.locator("input[name=request_id]").all():
        box.check()
    page.click("text=Approve the ticked requests")
    assert "2 change requests approved." in page.inner_text(".flash")
    page.click("text=Sign out")

    sign_in_browser(page, live_server, seller_email, PASSWORD, code_at(seller_secret, 1))
    page.goto(f"{live_server}/orders/{order_id}")
    lines_table = page.inner_text("section.card:has(h2:text('Lines'))")
    assert "rejected" in lines_table and late in lines_table
    page.click("text=Send a ship notice")
    page.fill(f"input[name=ship-{ids[0]}]", "60")
    shipped_on = date.today().isoformat()
    page.fill("#ship_date", shipped_on)
    page.fill("#expected_arrival", late)
    page.fill("#carrier", "DHL")
    page.click("text=Send ship notice")
    assert f"Ship notice {number}-ASN1 sent." in page.inner_text(".flash")
    assert "partially shipped" in page.inner_text("section.card:has(h2:text('Lines'))")
    from pathlib import Path

    from pypdf import PdfReader

    # The notice's packing slip, to put in the shipment.
    with page.expect_download() as slip:
        page.click("text=Packing slip (PDF)")
    assert slip.value.suggested_filename == f"packing-slip-{number}-ASN1.pdf"
    assert f"Ship notice {number}-ASN1" in PdfReader(slip.value.path()).pages[0].extract_text()
    # The supplier sends the packing list and its delivery plan (a workbook) on the order's messages; each
    # downloads as it was sent.
    from tests.office import XLSX
    from tests.pdfs import CLEAN_PDF

    committed_app.config["DOCUMENT_ROOT"] = str(tmp_path / "files")
    (tmp_path / "packing-list.pdf").write_bytes(CLEAN_PDF)
    (tmp_path / "delivery-plan.xlsx").write_bytes(XLSX)
    page.fill("#messages textarea[name=body]", "The packing list for the first 60, and the plan for the rest.")
    page.set_input_files("#messages input[name=files]",
                         [str(tmp_path / "packing-list.pdf"), str(tmp_path / "delivery-plan.xlsx")])  # fmt: skip
    page.click("#messages button:text('Send')")
    assert "The packing list for the first 60, and the plan for the rest." in page.inner_text("#messages article")
    for name, content in (("packing-list.pdf", CLEAN_PDF), ("delivery-plan.xlsx", XLSX)):
        with page.expect_download() as download:
            page.click(f"#messages article >> text={name}")
        assert Path(download.value.path()).read_bytes() == content
    page.click("text=Sign out")

    # At goods receipt the buyer finds the shipment on its way and receives it in full.
    sign_in_browser(page, live_server, buyer_email, PASSWORD, code_at(buyer_secret, 1))
    page.click("nav.mainnav >> text=Shipments")
    row = page.locator("main table tr", has_text=f"{number}-ASN1")
    expect(row).to_have_count(1)
    assert "DHL" in row.inner_text()
    row.locator("input[name=received_on]").fill("2099-01-04")  # a typo: refused
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:text('Received in full')").click()
    assert "2099-01-04 is in the future: enter the day the goods arrived." in page.inner_text(".flash")
    row = page.locator("main table tr", has_text=f"{number}-ASN1")
    assert row.locator("input[name=received_on]").input_value() == shipped_on  # today, as the list offers it
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:text('Received in full')").click()
    assert f"Ship notice {number}-ASN1 received (line 1: 60 pc)." in page.inner_text(".flash")
    assert page.locator("main table tr", has_text=f"{number}-ASN1").count() == 0
    page.goto(f"{live_server}/orders/{order_id}")
    assert "received" in page.inner_text("section.card:has(h2:text('Ship notices'))")


def test_a_buyer_revises_a_confirmed_line_and_the_supplier_confirms_it_again(live_server, browser, committed_db):
    """A change order in Chromium: the buyer revises an accepted line's quantity and date with a comment; the
    supplier sees it asked again with the buyer's words, and accepts the new terms."""
    from datetime import timedelta

    from portal.orders import services as svc
    from tests.factories import PASSWORD, make_order, make_tolerance

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s, "Northwind Revisions")
        supplier = make_supplier(s, tenant, "Acme Revisions")
        make_tolerance(s, tenant)
        order = make_order(s, tenant, supplier, [("100", "2.50", 14), ("40", "10.00", 21)])
        seller = make_member(s, tenant, Role.SUPPLIER_USER, supplier=supplier)
        buyer = make_member(s, tenant, Role.BUYER)
        first, _second = svc.order_lines(s, order)
        svc.accept_all(s, order=order, expected_version=None, actor=services.Actor(None, "supplier", ""))
        line_id, order_id, later = first.id, order.id, (first.requested_date + timedelta(days=4)).isoformat()
        seller_email, seller_secret, buyer_email, buyer_secret = seller.email, seller.secret, buyer.email, buyer.secret

    page = browser.new_page()
    sign_in_browser(page, live_server, buyer_email, PASSWORD, code_at(buyer_secret, 0))
    page.goto(f"{live_server}/orders/{order_id}")
    page.click(f"#line-{line_id} + tr summary")
    form = page.locator(f"#line-{line_id} + tr form.revise")
    form.locator("input[name=quantity]").fill("0")
    form.locator("button").click()
    assert "Enter a quantity above zero." in page.inner_text(f"#line-{line_id} + tr")  # next to the line
    form = page.locator(f"#line-{line_id} + tr form.revise")
    form.locator("input[name=quantity]").fill("80")
    form.locator("input[name=requested_date]").fill(later)
    form.locator("input[name=comment]").fill("the customer cut its order")
    form.locator("button").click()
    assert "Line 1 revised: it waits for the supplier to confirm it again." in page.inner_text(".flash")
    assert "awaiting response" in page.inner_text(f"#line-{line_id}")
    page.click("text=Sign out")

    sign_in_browser(page, live_server, seller_email, PASSWORD, code_at(seller_secret, 0))
    page.goto(f"{live_server}/orders/{order_id}")
    asked = page.inner_text(f"#answer-{line_id}")
    assert "The buyer revised this line after your answer" in asked and "the customer cut its order" in asked
    assert f"Requested 80 pc on {later}" in asked
    page.click("text=Accept all as requested")
    assert f"80 on {later}" in page.inner_text(f"#line-{line_id}")
    assert "confirmed" in page.inner_text(f"#line-{line_id}")


def test_spreadsheet_round_trip_with_a_bad_row_in_the_browser(live_server, browser, committed_db, tmp_path):
    import csv
    import io

    from tests.factories import PASSWORD, make_order, make_tolerance

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s, "Northwind Sheets")
        supplier = make_supplier(s, tenant, "Acme Sheets")
        make_tolerance(s, tenant)
        order = make_order(s, tenant, supplier, [("100", "2.50", 14), ("40", "10.00", 21)])
        seller = make_member(s, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
        number, email, secret = order.number, seller.email, seller.secret

    page = browser.new_page(accept_downloads=True)
    sign_in_browser(page, live_server, email, PASSWORD, code_at(secret, 0))
    page.goto(f"{live_server}/orders")
    page.click("text=Answer in a spreadsheet")
    with page.expect_download() as download_info:
        page.click("text=CSV")
    rows = list(csv.DictReader(io.StringIO(download_info.value.path().read_text(encoding="utf-8-sig"))))
    assert [r["order_number"] for r in rows] == [number, number]
    rows[0].update(promised_quantity="100", promised_date=rows[0]["requested_date"])
    rows[1].update(promised_quantity="40", promised_date="31/12/2026")  # the bad row: row 3 of the file
    sheet = tmp_path / "answers.csv"
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    page.set_input_files("#file", str(sheet))
    page.click("text=Check the file")
    assert "Row 3: promised_date must be YYYY-MM-DD." in page.inner_text("#preview")
    assert page.locator("text=Apply all").count() == 0
    rows[1]["promised_date"] = rows[1]["requested_date"]
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    page.set_input_files("#file", str(sheet))
    page.click("text=Check the file")
    assert "2 changes" in page.inner_text("#preview")
    page.click("text=Apply all 2 changes")
    assert "2 changes from the spreadsheet applied." in page.inner_text(".flash")
    page.goto(f"{live_server}/orders?tab=open")
    assert number in page.inner_text("main")


def test_buyer_creates_an_order_by_form_adding_a_fourth_line(live_server, browser, committed_db):
    """The form shows three line rows; "Add a line" shows a fourth. A line left without its date is named next to
    its row, what was typed stays, and once it is filled in the order is created with its four lines."""
    from tests.factories import PASSWORD, make_company_with_warehouse

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s, "Northwind Forms")
        supplier = make_supplier(s, tenant, "Acme Forms")
        _, warehouse = make_company_with_warehouse(s, tenant)
        buyer = make_member(s, tenant, Role.BUYER)
        email, secret, supplier_code, warehouse_code = buyer.email, buyer.secret, supplier.code, warehouse.code

    page = browser.new_page()
    sign_in_browser(page, live_server, email, PASSWORD, code_at(secret, 0))
    page.goto(f"{live_server}/orders/new")
    assert page.locator("tbody tr:visible").count() == 3
    page.click("text=Add a line")
    assert page.locator("tbody tr:visible").count() == 4
    page.fill("input[name=order_number]", "PO-FORM-4")
    page.select_option("select[name=supplier_code]", supplier_code)
    page.select_option("select[name=warehouse_code]", warehouse_code)
    for n in range(1, 5):
        page.fill(f"input[name=product_code-{n}]", f"P-{n}")
        page.fill(f"input[name=product_name-{n}]", f"Part {n}")
        page.fill(f"input[name=quantity-{n}]", str(10 * n))
        page.fill(f"input[name=unit_price-{n}]", "1.50")
        if n != 4:
            page.fill(f"input[name=requested_date-{n}]", "2026-12-10")
    page.click("text=Create the order")
    assert page.inner_text("#line-4-error") == "Line 4: Enter the requested date."
    assert page.input_value("input[name=product_name-4]") == "Part 4"
    page.fill("input[name=requested_date-4]", "2026-12-17")
    page.click("text=Create the order")
    assert "Order PO-FORM-4 created; Acme Forms sees it now." in page.inner_text(".flash")
    assert page.locator("main table tbody tr", has_text="Part 4").count() == 1


def test_supplier_uploads_a_certificate_and_compliance_approves_it(
    live_server, browser, committed_app, committed_db, tmp_path
):
    from portal.documents.models import DocumentType, Requirement
    from tests.factories import PASSWORD
    from tests.pdfs import CLEAN_PDF, JAVASCRIPT_PDF

    committed_app.config["DOCUMENT_ROOT"] = str(tmp_path / "docs")
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s, "Northwind Docs")
        supplier = make_supplier(s, tenant, "Acme Docs")
        set_context(s, tenant_id=tenant.id)
        iso = DocumentType(tenant_id=tenant.id, code="ISO9001", name="ISO 9001")
        s.add(iso)
        s.flush()
        s.add(Requirement(tenant_id=tenant.id, document_type_id=iso.id, validity_months=12))
        seller = make_member(s, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
        officer = make_member(s, tenant, Role.COMPLIANCE_OFFICER)
        people = (seller.email, seller.secret, officer.email, officer.secret)
    (tmp_path / "cert.pdf").write_bytes(CLEAN_PDF)
    (tmp_path / "bad.pdf").write_bytes(JAVASCRIPT_PDF)

    # Compliance finds the supplier without its certificate from the home page and asks for it (confirming).
    page = browser.new_page()
    sign_in_browser(page, live_server, people[2], PASSWORD, code_at(people[3], 0))
    page.click("text=supplier lacking a required document")
    page.wait_for_url("**/documents/gaps")
    assert "Acme Docs" in page.inner_text("main table") and "nothing uploaded" in page.inner_text("main table")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Ask these suppliers for their documents")
    assert "Asked 1 supplier (1 person) for their documents." in page.inner_text(".flash")
    page.click("text=Sign out")

    sign_in_browser(page, live_server, people[0], PASSWORD, code_at(people[1], 0))
    page.goto(f"{live_server}/notifications")
    assert "1 document is required of Acme Docs" in page.inner_text("main")
    page.click("nav.mainnav >> text=Compliance")
    assert "missing" in page.inner_text("main")
    page.fill("#title", "ISO 9001 certificate")
    page.set_input_files("#file", str(tmp_path / "bad.pdf"))
    page.click("button:has-text('Upload')")
    assert "active content" in page.inner_text(".error")
    page.fill("#title", "ISO 9001 certificate")
    page.set_input_files("#file", str(tmp_path / "cert.pdf"))
    page.click("button:has-text('Upload')")
    assert "uploaded; the compliance team will review it" in page.inner_text(".flash")
    assert "waiting for review" in page.inner_text("main")
    page.click("text=Sign out")

    sign_in_browser(page, live_server, people[2], PASSWORD, code_at(people[3], 1))
    page.click("nav.mainnav >> text=Documents")
    page.click("text=ISO 9001 certificate")
    # The sandboxed preview: a picture the portal rendered, loaded and shown.
    preview = page.locator("img.preview-page").first
    preview.wait_for()
    page.wait_for_function("() => document.querySelector('img.preview-page').complete")
    assert preview.evaluate("img => img.naturalWidth") > 100
    page.check("input[name=decision][value=approve]")
    page.click("text=Record the decision")
    assert "approved" in page.inner_text(".flash")
    page.click("text=Sign out")

    sign_in_browser(page, live_server, people[0], PASSWORD, code_at(people[1], 1))
    page.click("nav.mainnav >> text=Compliance")
    assert "valid until" in page.inner_text("main")


def _scorecard_supplier(committed_db) -> tuple[dict[str, int], str, str]:  # type: ignore[no-untyped-def]
    """The scorecard fixtures, committed, and an administrator of their supplier (e-mail, TOTP secret)."""
    from portal.suppliers.models import Supplier
    from portal.tenancy.models import Tenant
    from tests.test_scorecards import build

    with tenant_session(committed_db, None) as s:
        ids = build(s)
        set_context(s, tenant_id=ids["tenant_id"])
        seller = make_member(
            s, s.get(Tenant, ids["tenant_id"]), Role.SUPPLIER_ADMIN, supplier=s.get(Supplier, ids["acme"])
        )
        return ids, seller.email, seller.secret


def test_supplier_drills_from_a_scorecard_figure_to_the_late_delivery(live_server, browser, committed_db):
    from tests.factories import PASSWORD

    _, email, secret = _scorecard_supplier(committed_db)
    page = browser.new_page()
    sign_in_browser(page, live_server, email, PASSWORD, code_at(secret, 0))
    page.click("nav.mainnav >> text=Scorecard")
    page.goto(live_server + "/scorecard?period=month&at=2026-01-20")
    assert page.inner_text("[data-testid=otif]").strip() == "50.0 %"
    assert page.locator("svg.trend").count() == 1
    # The late first delivery of the split line: flagged, one day late, and it leads to its order line.
    late = page.locator("table.evidence tr.flagged", has_text="2026-01-13")  # arrived 13 Jan, promised 12 Jan
    assert late.count() == 1 and late.locator("td").last.inner_text().strip() == "1"
    late.locator("a").click()
    page.wait_for_url("**/orders/*#line-*")
    assert "Order PO-1" in page.inner_text("h1")


def test_the_export_page_follows_the_worker_until_the_pdf_is_ready(live_server, browser, committed_db, committed_app):
    """In Chromium: the button asks for the PDF, the export's page refreshes itself (no script: a meta refresh,
    which the CSP allows) and offers the download once a worker has made the file."""
    from tests.conftest import drain
    from tests.factories import PASSWORD

    ids, email, secret = _scorecard_supplier(committed_db)
    page = browser.new_page()
    sign_in_browser(page, live_server, email, PASSWORD, code_at(secret, 0))
    page.goto(live_server + "/scorecard?period=month&at=2026-01-20")
    page.click("text=Make the PDF in the background")
    page.wait_for_url("**/exports/*")
    assert page.get_attribute("[data-testid=export-state]", "data-state") == "queued"
    with committed_app.app_context():  # what a worker does with the request
        assert "export.requested" in drain(committed_db, ids["tenant_id"])
    # No reload by the test: the page's own refresh picks the result up.
    page.wait_for_selector("[data-testid=export-state][data-state=done]", timeout=15_000)
    with page.expect_download() as download:
        page.click("text=Download")
    assert download.value.suggested_filename == "scorecard-ACME-2026-01-01.pdf"


# The pages each kind of person works on every day (the demo data fills them).
def test_a_supplier_admin_connects_the_accounts_system_with_a_key_and_a_webhook(
    live_server, browser, committed_db, tmp_path
):
    """Anna (who supplies two customers) issues a key for Northwind, her system reads the orders with it, she adds
    a webhook; the page passes axe-core's checks with both secrets shown, and each secret is shown only once."""
    import httpx
    from axe_playwright_python.sync_playwright import Axe

    from portal.demo import seed_demo
    from portal.documents.storage import LocalStorage

    with tenant_session(committed_db, None) as s:
        seed_demo(s, LocalStorage(tmp_path))
    email = "anna@acme.example"
    page = browser.new_context(bypass_csp=True).new_page()
    sign_in_demo(page, live_server, email, customer="Northwind Distribution")
    page.goto(f"{live_server}/orders")
    page.click("text=Connect your system (API)")
    page.fill("#name", "Acme ERP")
    page.select_option("#days", "30")
    page.click("text=Issue key")
    key = page.locator("[data-testid=api-key]").inner_text()
    assert key.startswith("spk_")
    orders, authorised = f"{live_server}/api/v1/orders?state=all", {"Authorization": f"Bearer {key}"}
    listed = httpx.get(orders, headers=authorised).json()
    assert listed["total"] > 0 and listed["orders"][0]["url"].startswith("/api/v1/orders/")
    page.fill("#url", "https://erp.acme.example/portal-events")
    page.check("input[value='order.created']")
    page.click("text=Add webhook")
    assert page.locator("[data-testid=webhook-secret]").inner_text().startswith("whsec_")
    violations = Axe().run(page).response["violations"]
    assert [(v["id"], [n["target"] for n in v["nodes"][:3]]) for v in violations] == []
    page.goto(f"{live_server}/api-keys")
    assert page.locator("[data-testid=api-key]").count() == 0 and "Acme ERP" in page.content()
    assert "erp.acme.example/portal-events" in page.content() and "none yet" in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("form[action$='/revoke'] button").first.click()
    page.wait_for_load_state()
    assert "revoked" in page.content()
    assert httpx.get(orders, headers=authorised).status_code == 401


DAILY_PAGES = {
    "admin@northwind.example": ["/", "/orders?tab=all", "/orders/arrivals", "/orders/queue", "/orders/exceptions",
                                "/scorecards", "/suppliers", "/documents/review", "/documents/dashboard",
                                "/documents/gaps", "/people", "/settings",
                                "/orders/tolerances", "/settings/erp", "/settings/jobs", "/settings/webhooks",
                                "/audit", "/orders/new", "/exports", "/account", "/notifications"],
    "sam@acme.example": ["/", "/orders?tab=all", "/orders/arrivals", "/orders/spreadsheet", "/scorecard", "/compliance",
                         "/account", "/notifications", "/api-keys"],
}  # fmt: skip


@pytest.mark.parametrize("email", sorted(DAILY_PAGES))
def test_the_daily_pages_have_no_accessibility_violations(live_server, browser, committed_db, tmp_path, email):
    """axe-core's rules (WCAG 2.1 A and AA, and best practices) on the pages each kind of person uses every day,
    and on an order and a supplier's page, with the demo data; the page's content security policy is bypassed
    only to let the checker run."""
    from axe_playwright_python.sync_playwright import Axe

    from portal.demo import DEMO_PASSWORD, demo_secret, seed_demo
    from portal.documents.storage import LocalStorage

    with tenant_session(committed_db, None) as s:
        seed_demo(s, LocalStorage(tmp_path))
    page = browser.new_context(bypass_csp=True).new_page()
    sign_in_browser(page, live_server, email, DEMO_PASSWORD, pyotp.TOTP(demo_secret(email)).now())
    page.goto(f"{live_server}/orders?tab=all")
    paths = [*DAILY_PAGES[email], page.locator("main table a").first.get_attribute("href")]
    if email.startswith("admin"):
        page.goto(f"{live_server}/suppliers")
        paths.append(page.locator("main table a").first.get_attribute("href"))
    axe, found = Axe(), {}
    for path in paths:
        page.goto(f"{live_server}{path}")
        violations = axe.run(page).response["violations"]
        if violations:
            found[path] = [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in violations]
    assert found == {}


PHONE_PAGES = {
    "anna@acme.example": [
        "/",
        "/orders?tab=all",
        "/orders/arrivals",
        "/scorecard",
        "/compliance",
        "/notifications",
        "/account",
        "/api-keys",
    ],
    "admin@northwind.example": [path for path in DAILY_PAGES["admin@northwind.example"] if path != "/"],
}


@pytest.mark.parametrize("email", sorted(PHONE_PAGES))
def test_a_phone_shows_the_daily_pages_without_sideways_scrolling(live_server, browser, committed_db, tmp_path, email):
    """At a phone's width (390 px), and a tablet's and a laptop's (800 and 1280 px), no page is wider than the
    screen: wide tables scroll inside the page (their hidden headings too), long values break, and the header's
    customer switcher (its longest option names a customer and a supplier) takes the width left. Anna supplies two
    customers, so the switcher is there.

    From the sign-in on, no request the pages make fails (the browser's own favicon request included) and the
    console shows no error (a script or style the content security policy refused would show there)."""
    from portal.demo import seed_demo
    from portal.documents.storage import LocalStorage

    with tenant_session(committed_db, None) as s:
        seed_demo(s, LocalStorage(tmp_path))
    page = browser.new_page(viewport={"width": 390, "height": 844})
    failures: list[tuple[object, str]] = []
    page.on("response", lambda response: response.status >= 400 and failures.append((response.status, response.url)))
    page.on("console", lambda message: message.type == "error" and failures.append((message.type, message.text)))
    sign_in_demo(page, live_server, email, customer="Northwind Distribution" if email.startswith("anna") else None)
    assert page.locator("#switch-customer").count() == (1 if email.startswith("anna") else 0)
    page.goto(f"{live_server}/orders?tab=all")
    order = page.locator("main table a").first.get_attribute("href")
    paths = [*PHONE_PAGES[email], order] + ([f"{order}/ship"] if email.startswith("anna") else [])
    too_wide = {}
    # A phone, a tablet held upright, a laptop: a table wider than the screen scrolls inside its own frame.
    for screen in (390, 800, 1280):
        page.set_viewport_size({"width": screen, "height": 844})
        for path in paths:
            page.goto(f"{live_server}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > screen:
                too_wide[(screen, path)] = width
    assert too_wide == {}
    assert failures == []
