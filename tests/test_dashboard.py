"""The home page after sign-in: each role's figures of what needs attention, each linking to the page that
lists them and agreeing with it; a supplier sees only its own orders."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from portal.auth.permissions import Role
from portal.auth.services import Actor
from portal.db import set_context
from portal.orders import services as svc
from tests.factories import PASSWORD, make_member, make_order, make_supplier, make_tenant, make_tolerance
from tests.helpers import PortalClient
from tests.test_documents import CLEAN_PDF, compliance_world, upload  # noqa: F401  (a fixture)

TILE = re.compile(
    r'<a class="tile(?P<urgent> urgent)?" href="(?P<href>[^"]+)" data-testid="tile">'
    r'<span class="figure">(?P<figure>[^<]+)</span><span>(?P<label>[^<]+)</span></a>'
)


def tiles(html: str) -> dict[str, tuple[str, str, bool]]:
    """The page's figures by label: (figure, link, urgent)."""
    return {m["label"]: (m["figure"], m["href"].replace("&amp;", "&"), bool(m["urgent"])) for m in TILE.finditer(html)}


def signed_in(app, person) -> PortalClient:  # type: ignore[no-untyped-def]
    client = PortalClient(app.test_client())
    client.sign_in(person.email, PASSWORD, person.secret)
    return client


@pytest.fixture
def orders_world(app, session):
    tenant = make_tenant(session, "Home Distribution")
    acme, bolt = make_supplier(session, tenant, "Acme Home"), make_supplier(session, tenant, "Bolt Home")
    make_tolerance(session, tenant)
    # Acme: two orders awaiting its answer, one of them due ten days ago (late); Bolt: one order.
    make_order(session, tenant, acme, [("10", "1.00", 5)])
    make_order(session, tenant, acme, [("10", "1.00", 5)], order_date=date.today() - timedelta(days=15))
    bolts = make_order(session, tenant, bolt, [("5", "2.00", 7), ("3", "2.00", 9)])
    return session, tenant, acme, bolt, bolts


def test_a_supplier_sees_its_own_orders_as_its_inbox_counts_them(app, orders_world):
    session, tenant, acme, bolt, _ = orders_world
    home = signed_in(app, make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=acme)).get("/")
    assert home.status_code == 200
    figures = tiles(home.text)
    assert figures["orders waiting for your answer"] == ("2", "/orders?tab=needs_response", True)
    assert figures["late order"] == ("1", "/orders?tab=late", True)
    assert figures["changes waiting for the buyer"] == ("0", "/orders?tab=changes_pending", False)
    assert figures["confirmed orders to ship"] == ("0", "/orders?tab=open", False)
    assert "No purchase orders yet" not in home.text
    # Another supplier of the same customer counts only its own order.
    other = tiles(signed_in(app, make_member(session, tenant, Role.SUPPLIER_USER, supplier=bolt)).get("/").text)
    assert other["order waiting for your answer"][0] == "1" and other["late orders"][0] == "0"


def test_the_figures_agree_with_the_inbox_tabs_they_link_to(app, orders_world):
    session, tenant, acme, _, _ = orders_world
    client = signed_in(app, make_member(session, tenant, Role.SUPPLIER_USER, supplier=acme))
    linked = [(figure, href) for figure, href, _ in tiles(client.get("/").text).values() if "?tab=" in href]
    assert len(linked) == 4
    for figure, href in linked:
        shown = re.search(r'aria-current="page">[^<]*<span class="count">([^<]+)</span>', client.get(href).text)
        assert shown is not None and shown.group(1) == figure, href


def test_a_supplier_without_orders_is_told_where_they_will_appear(app, session):
    tenant = make_tenant(session, "Empty Distribution")
    supplier = make_supplier(session, tenant, "New Supplier")
    home = signed_in(app, make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)).get("/")
    assert "No purchase orders yet" in home.text
    assert tiles(home.text)["orders waiting for your answer"][0] == "0"


def test_a_buyer_sees_orders_awaiting_suppliers_late_ones_and_changes_to_decide(app, orders_world):
    session, tenant, _, _, bolts = orders_world
    buyer = signed_in(app, make_member(session, tenant, Role.BUYER))
    figures = tiles(buyer.get("/").text)
    assert figures["orders waiting for suppliers to answer"] == ("3", "/orders?tab=needs_response", False)
    assert figures["late order"] == ("1", "/orders?tab=late", True)
    assert figures["supplier changes to decide"] == ("0", "/orders/queue", False)
    assert figures["suppliers"][0] == "2"
    assert "documents to review" not in figures and "people with access" not in figures  # not a buyer's work

    # The supplier rejects a line: a rejection always waits for the buyer.
    first, _ = svc.order_lines(session, bolts)
    set_context(session, tenant_id=tenant.id)
    answers = [svc.LineAnswer(first.id, "reject", reason_code="discontinued")]
    svc.respond(session, order=bolts, answers=answers, expected_version=None, actor=Actor(None, "test", ""))
    session.flush()
    figures = tiles(buyer.get("/").text)
    assert figures["supplier change to decide"] == ("1", "/orders/queue", True)
    # The order's other line still waits for an answer: the order is still counted as waiting.
    assert figures["orders waiting for suppliers to answer"][0] == "3"


def test_compliance_sees_documents_to_review_and_a_supplier_its_certificates_to_upload(compliance_world):  # noqa: F811
    _session, _tenant, _supplier, iso, seller, officer, _root = compliance_world
    assert tiles(seller.get("/").text)["required certificate to upload"] == ("1", "/compliance", True)
    first = tiles(officer.get("/").text)
    assert first["documents to review"] == ("0", "/documents/review", False)
    # The supplier lacks its ISO 9001: counted, and the figure opens the gap list that names it.
    assert first["supplier lacking a required document"] == ("1", "/documents/gaps", False)
    assert "1 gap at 1 supplier." in officer.get("/documents/gaps").text
    assert first["approved documents expiring within 30 days"] == ("0", "/documents/review?status=approved&expiring=30",
                                                                   False)  # fmt: skip

    assert upload(seller, iso.id, "iso.pdf", CLEAN_PDF, issue_date=date.today().isoformat()).status_code == 302
    assert tiles(seller.get("/").text)["required certificates to upload"][0] == "0"
    officer_figures = tiles(officer.get("/").text)
    assert officer_figures["document to review"] == ("1", "/documents/review", True)
    assert "supplier changes to decide" not in officer_figures  # compliance does not decide orders


def test_a_suppliers_page_shows_its_open_orders_as_its_inbox_counts_them(app, orders_world):
    session, tenant, acme, bolt, _ = orders_world
    buyer = signed_in(app, make_member(session, tenant, Role.BUYER))
    figures = tiles(buyer.get(f"/suppliers/{acme.id}").text)
    assert figures["orders waiting for its answer"] == ("2", f"/orders?tab=needs_response&supplier={acme.id}", False)
    assert figures["late order"] == ("1", f"/orders?tab=late&supplier={acme.id}", True)
    # Each figure agrees with the tenant's inbox filtered to this supplier.
    for figure, href, _ in figures.values():
        shown = re.search(r'aria-current="page">[^<]*<span class="count">([^<]+)</span>', buyer.get(href).text)
        assert shown is not None and shown.group(1) == figure, href
    assert tiles(buyer.get(f"/suppliers/{bolt.id}").text)["order waiting for its answer"][0] == "1"
    assert "No document is required of this supplier." in buyer.get(f"/suppliers/{acme.id}").text


def test_a_suppliers_page_lists_the_documents_required_of_it(compliance_world):  # noqa: F811
    _session, _tenant, supplier, iso, seller, officer, _root = compliance_world
    page = officer.get(f"/suppliers/{supplier.id}").text
    assert re.search(r"<td>ISO 9001</td>\s*<td><span class=\"state rejected\">missing</span>", page)
    assert upload(seller, iso.id, "iso.pdf", CLEAN_PDF, issue_date=date.today().isoformat()).status_code == 302
    page = officer.get(f"/suppliers/{supplier.id}").text
    assert '<span class="state open">pending</span>' in page and "/documents/" in page  # the review is a link away
