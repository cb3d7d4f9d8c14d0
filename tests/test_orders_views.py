"""Order screens through the real forms: a supplier answers, the buyer decides,
the supplier ships; conflicts, errors next to their lines, fixed query counts."""

from __future__ import annotations

import csv
import io
import re
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select, update

from portal.auth.permissions import Role
from portal.db import set_context, utcnow
from portal.formatting import quantity
from portal.orders import services as svc
from portal.orders.models import (
    ChangeRequest,
    ChangeState,
    LineState,
    OrderMessage,
    OrderState,
    PurchaseOrder,
    PurchaseOrderLine,
    ShipNotice,
)
from portal.outbox import OutboxEvent
from portal.suppliers.models import Supplier
from portal.tenancy.services import forget_choices
from tests.factories import PASSWORD, make_member, make_order, make_supplier, make_tenant, make_tolerance
from tests.helpers import PortalClient, csrf_from


@pytest.fixture
def trade(app, session):
    tenant = make_tenant(session, "Northwind Orders")
    supplier = make_supplier(session, tenant, "Acme Orders")
    make_tolerance(session, tenant)
    order = make_order(session, tenant, supplier, [("100", "2.50", 14), ("40", "10.00", 21), ("12", "4.00", 10)])
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    buyer = make_member(session, tenant, Role.BUYER)
    supplier_client, buyer_client = PortalClient(app.test_client()), PortalClient(app.test_client())
    supplier_client.sign_in(seller.email, PASSWORD, seller.secret)
    buyer_client.sign_in(buyer.email, PASSWORD, buyer.secret)
    lines = svc.order_lines(session, order)
    return session, tenant, order, lines, supplier_client, buyer_client


def post_form(client: PortalClient, page: str, action: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    html = client.get(page).text
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    return client.post(action, {"csrf_token": csrf_from(html), "version": version, **data})


def test_supplier_answers_line_by_line_and_buyer_approves(trade):
    session, tenant, order, (first, second, third), seller, buyer = trade
    page = f"/orders/{order.id}"
    assert "Accept all as requested" in seller.get(page).text
    late = (second.requested_date + timedelta(days=6)).isoformat()
    answer = {
        f"line-{first.id}-action": "change",  # split in two, inside tolerance
        f"line-{first.id}-qty-1": "60",
        f"line-{first.id}-date-1": first.requested_date.isoformat(),
        f"line-{first.id}-qty-2": "40",
        f"line-{first.id}-date-2": (first.requested_date + timedelta(days=2)).isoformat(),
        f"line-{second.id}-action": "change",  # a later date: outside tolerance
        f"line-{second.id}-qty-1": "40",
        f"line-{second.id}-date-1": late,
        f"line-{third.id}-action": "reject",
        f"line-{third.id}-reason": "discontinued",
        f"line-{third.id}-comment": "replaced by P-004",
    }
    preview = post_form(seller, page, f"/orders/{order.id}/respond", {**answer, "preview": "1"})
    assert preview.status_code == 200
    assert "Inside the tolerance: confirmed at once." in preview.text
    assert "6 days after the requested date" in preview.text and "rejections always go to the buyer" in preview.text
    session.expire_all()
    assert session.get(PurchaseOrder, order.id).state == OrderState.AWAITING_RESPONSE  # a preview saves nothing
    done = post_form(seller, page, f"/orders/{order.id}/respond", answer)
    assert done.status_code == 302
    assert "1 line confirmed; 2 lines sent to the buyer" in seller.get(page).text
    queue = buyer.get("/orders/queue")
    assert queue.status_code == 200 and order.number in queue.text and "replaced by P-004" in queue.text
    assert f'href="/orders/{order.id}#change-requests"' in queue.text
    assert f'40 on <span class="nowrap">{late}</span>' in queue.text  # the proposed delivery, as the line shows it
    # On the order page each request names its line, what it asks, and what was requested.
    cards = buyer.get(page).text.split('id="change-requests"')[1].split("</section>")[0]
    assert f"Line 2 · {second.product_code}" in cards and "quantity or date outside the tolerance" in cards
    assert f"Requested: 40 pc on {second.requested_date}" in cards and "rejection" in cards
    assert f"Proposed: 40 pc on {late}" in cards  # in the same words as the request
    # Goods may arrive while a change waits for the buyer: its receipt can be recorded meanwhile.
    assert f'action="/orders/{order.id}/lines/{second.id}/receipts"' in buyer.get(page).text
    set_context(session, tenant_id=tenant.id)
    requests = session.execute(select(ChangeRequest).where(ChangeRequest.order_id == order.id)).scalars().all()
    html = buyer.get("/orders/queue").text
    bulk = buyer.post(
        "/change-requests/approve", {"csrf_token": csrf_from(html), "request_id": [str(r.id) for r in requests]}
    )
    assert bulk.status_code == 302
    session.expire_all()
    states = {line.id: line.state for line in svc.order_lines(session, session.get(PurchaseOrder, order.id))}
    assert states == {first.id: LineState.CONFIRMED, second.id: LineState.CONFIRMED, third.id: LineState.REJECTED}
    # The same ticks sent again (a second click): nothing is approved twice, and the line is named.
    again = buyer.post(
        "/change-requests/approve", {"csrf_token": csrf_from(html), "request_id": [str(r.id) for r in requests]}
    )
    assert again.status_code == 303
    named = rf"Nothing approved: {order.number} line [23]: This change request has been decided already\."
    assert re.search(named, buyer.get("/orders/queue").text)
    history = seller.get(page).text
    assert "approved change" in history and "rejected" in history and "60 on" in history
    assert ".000 on" not in history  # quantities without trailing zeros, as everywhere else


def test_the_supplier_sees_why_the_buyer_turned_an_answer_down_until_it_answers_again(trade):
    """A date outside the tolerance, countered by the buyer with a comment: the answer form shows the counter and
    the comment beside the line; answering again (inside the tolerance) takes it away."""
    from portal.auth.services import Actor

    session, _, order, (first, _, _), seller, _ = trade
    actor = Actor(None, "test", "")
    later = first.requested_date + timedelta(days=6)
    svc.respond(session, order=order, expected_version=None, actor=actor,
                answers=[svc.LineAnswer(first.id, "change", (svc.Delivery(Decimal("100"), later),))])  # fmt: skip
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    svc.decide(session, request=request, order=order, decision="counter", comment="Can you do the 10th?",
               expected_version=None, actor=actor)  # fmt: skip
    page = f"/orders/{order.id}"
    note = f'data-testid="turned-down-{first.id}">The buyer countered your proposal (100 pc on {later}): “Can you'
    assert note in seller.get(page).text
    svc.respond(session, order=order, expected_version=None, actor=actor,
                answers=[svc.LineAnswer(first.id, "accept", ())])  # fmt: skip
    answered = seller.get(page).text
    assert f'data-testid="turned-down-{first.id}"' not in answered
    # The history tells the whole exchange in order: the proposal, the counter (the buyer's words), the answer.
    history = " ".join(answered.split("<h2>History</h2>")[1].split("</section>")[0].split())
    steps = [history.index(text) for text in (
        f"Line 1: <strong>proposed</strong> 100 on {later}", "<strong>countered</strong>",
        "“Can you do the 10th?”", "Line 1: <strong>accepted</strong>",
    )]  # fmt: skip
    assert steps == sorted(steps)


def test_a_turned_down_price_change_is_shown_with_its_price_only(trade):
    from portal.auth.services import Actor

    session, _, order, (first, _, _), seller, _ = trade
    actor = Actor(None, "test", "")
    svc.respond(session, order=order, expected_version=None, actor=actor,
                answers=[svc.LineAnswer(first.id, "accept", price=Decimal("2.75"))])  # fmt: skip
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    svc.decide(session, request=request, order=order, decision="reject", comment="2.50 as agreed.",
               expected_version=None, actor=actor)  # fmt: skip
    page = seller.get(f"/orders/{order.id}").text
    note = page.split(f'data-testid="turned-down-{first.id}">')[1].split("</p>")[0]
    assert " ".join(note.split()) == "The buyer turned down your price change (2.75 EUR): “2.50 as agreed.”"


def test_the_queue_lists_orders_awaiting_their_supplier_with_links_and_days_waited(trade):
    _, _, order, _, _, buyer = trade
    waiting = (date.today() - order.order_date).days
    page = buyer.get("/orders/queue").text
    section = page.split("Orders awaiting the supplier")[1]
    assert f'<a href="/orders/{order.id}">{order.number}</a>' in section and f"{waiting} days" in section
    assert "Acme Orders" in section


def test_the_queue_marks_orders_unanswered_past_the_tenants_days_as_overdue(trade):
    """With the default of 3 days, as the exceptions count an order unconfirmed: 2 days waiting is not overdue,
    3 days is."""
    session, tenant, order, _, _, buyer = trade
    assert tenant.unconfirmed_after_days == 3
    for days, overdue in ((2, False), (3, True)):
        order.order_date = date.today() - timedelta(days=days)
        session.flush()
        section = buyer.get("/orders/queue").text.split("Orders awaiting the supplier")[1]
        row = section.split(f">{order.number}</a>")[1].split("</tr>")[0]
        assert f"{days} days" in row and ('<span class="badge warn">overdue</span>' in row) == overdue
        assert "An order unanswered 3 days after it was placed, or after a line was added or revised, is overdue" in (
            section
        )


def test_the_queue_filters_by_buyer_and_a_decision_returns_to_the_filtered_queue(trade, app):
    """Each buyer works their own orders: the queue's buyer filter keeps the change requests and the awaiting
    orders of the orders that buyer placed, and deciding from the filtered queue comes back to it."""
    session, tenant, order, (first, _, _), seller, buyer = trade

    forget_choices()  # the buyer choices are kept a minute per tenant and process
    mine = make_member(session, tenant, Role.BUYER)
    theirs = make_member(session, tenant, Role.BUYER)
    supplier = session.get(Supplier, order.supplier_id)
    other = make_order(session, tenant, supplier, [("10", "1.00", 9)])
    order.buyer_id, other.buyer_id = mine.user.id, theirs.user.id
    session.flush()
    late = (first.requested_date + timedelta(days=9)).isoformat()
    for answered in (order, other):
        (line, *_) = svc.order_lines(session, answered)
        done = post_form(seller, f"/orders/{answered.id}", f"/orders/{answered.id}/respond",
                         {f"line-{line.id}-action": "change", f"line-{line.id}-qty-1": str(int(line.quantity)),
                          f"line-{line.id}-date-1": late})  # fmt: skip
        assert done.status_code == 302
    waiting = make_order(session, tenant, supplier, [("5", "1.00", 9)])
    waiting.buyer_id = theirs.user.id
    session.flush()

    def sections(page: str) -> tuple[str, str]:
        changes, awaiting = page.split("Orders awaiting the supplier")
        return changes.split("Change requests to decide")[1], awaiting

    changes, awaiting = sections(buyer.get("/orders/queue").text)
    assert order.number in changes and other.number in changes and waiting.number in awaiting
    filtered = buyer.get(f"/orders/queue?buyer={theirs.user.id}").text
    changes, awaiting = sections(filtered)
    assert other.number in changes and order.number not in changes and waiting.number in awaiting
    assert f'<option value="{theirs.user.id}" selected>' in filtered
    changes, awaiting = sections(buyer.get(f"/orders/queue?buyer={mine.user.id}").text)
    assert order.number in changes and other.number not in changes and waiting.number not in awaiting
    # A decision from the filtered queue posts the filter back and returns to the queue as it was.
    row = filtered.split(f">{other.number}</a>")[1].split("</tr>")[0]
    assert f'<input type="hidden" name="buyer" value="{theirs.user.id}">' in row
    action = re.search(r'action="(/change-requests/\d+/decide)"', row).group(1)
    version = re.search(r'name="version" value="(\d+)"', row).group(1)
    decided = buyer.post(action, {"csrf_token": csrf_from(filtered), "version": version, "back": "queue",
                                  "buyer": str(theirs.user.id), "decision": "approve", "comment": ""})  # fmt: skip
    assert decided.status_code == 302 and decided.headers["Location"] == f"/orders/queue?buyer={theirs.user.id}"
    changes, _ = sections(buyer.get(f"/orders/queue?buyer={theirs.user.id}").text)
    assert other.number not in changes
    # So do the bulk approval (here with nothing ticked) and a reminder.
    queue_url = f"/orders/queue?buyer={theirs.user.id}"
    posted = {"csrf_token": csrf_from(filtered), "buyer": str(theirs.user.id)}
    untouched = buyer.post("/change-requests/approve", posted)
    assert untouched.status_code == 303 and untouched.headers["Location"] == queue_url
    reminded = buyer.post(f"/orders/{waiting.id}/remind", {**posted, "back": "queue"})
    assert reminded.status_code == 303 and reminded.headers["Location"] == queue_url


def test_errors_are_shown_next_to_their_line_and_nothing_is_saved(trade):
    session, _, order, (first, second, _), seller, _ = trade
    page = f"/orders/{order.id}"
    response = post_form(
        seller,
        page,
        f"/orders/{order.id}/respond",
        {
            f"line-{first.id}-action": "change",
            f"line-{first.id}-qty-1": "abc",
            f"line-{first.id}-date-1": "31/12/2026",
            f"line-{second.id}-action": "change",
            f"line-{second.id}-qty-1": "999",
            f"line-{second.id}-date-1": second.requested_date.isoformat(),
        },
    )
    assert response.status_code == 422
    assert "Delivery 1: enter the quantity as a number." in response.text
    assert "Delivery 1: enter the date as YYYY-MM-DD." in response.text
    session.expire_all()
    assert all(
        line.state == LineState.AWAITING_RESPONSE
        for line in svc.order_lines(session, session.get(PurchaseOrder, order.id))
    )
    rules = post_form(
        seller,
        page,
        f"/orders/{order.id}/respond",
        {
            f"line-{second.id}-action": "change",
            f"line-{second.id}-qty-1": "999",
            f"line-{second.id}-date-1": second.requested_date.isoformat(),
        },
    )
    assert rules.status_code == 422 and "You can commit at most 42" in rules.text
    assert 'value="999"' in rules.text  # the person's input is kept


def test_a_line_filled_in_but_left_to_answer_later_is_refused_not_dropped(trade):
    """A supplier who types a quantity but leaves the line on "Answer later" (or on "Accept") is told so next to
    the line; nothing of the form is saved, not even the other lines' answers, and what was typed is kept."""
    session, _, order, (first, second, third), seller, _ = trade
    page, action = f"/orders/{order.id}", f"/orders/{order.id}/respond"
    untouched = {f"line-{third.id}-qty-1": "12", f"line-{third.id}-date-1": third.requested_date.isoformat()}
    forgot = post_form(seller, page, action, {
        f"line-{first.id}-action": "accept",
        f"line-{second.id}-qty-1": "35",
        f"line-{second.id}-date-1": second.requested_date.isoformat(),
        **untouched,
    })  # fmt: skip
    assert forgot.status_code == 422
    assert "You filled in this line but left it on “Answer later”" in forgot.text
    assert forgot.text.count("You filled in this line") == 1  # the untouched third line is fine as it is
    assert 'value="35"' in forgot.text
    session.expire_all()
    assert all(line.state == LineState.AWAITING_RESPONSE for line in svc.order_lines(session, order))

    for typed in ({f"line-{second.id}-comment": "call me"}, {f"line-{second.id}-reason": "discontinued"},
                  {f"line-{second.id}-price": "9.50"}):  # fmt: skip
        refused = post_form(seller, page, action, {f"line-{first.id}-action": "accept", **typed})
        assert refused.status_code == 422 and "You filled in this line" in refused.text, typed

    accepted_but_split = post_form(seller, page, action, {
        f"line-{first.id}-action": "accept",
        f"line-{first.id}-qty-1": "60",
        f"line-{first.id}-date-1": first.requested_date.isoformat(),
        f"line-{first.id}-qty-2": "40",
        f"line-{first.id}-date-2": (first.requested_date + timedelta(days=1)).isoformat(),
    })  # fmt: skip
    assert accepted_but_split.status_code == 422
    assert "You changed the deliveries but chose Accept" in accepted_but_split.text
    session.expire_all()
    assert all(line.state == LineState.AWAITING_RESPONSE for line in svc.order_lines(session, order))

    # The fresh form's own values (the request in the first row, the price as it is) are no answer to refuse.
    fine = post_form(seller, page, action, {
        f"line-{first.id}-action": "accept",
        f"line-{second.id}-qty-1": "40.000",
        f"line-{second.id}-date-1": second.requested_date.isoformat(),
        f"line-{second.id}-price": "10",
        **untouched,
    })  # fmt: skip
    assert fine.status_code == 302
    session.expire_all()
    states = [line.state for line in svc.order_lines(session, order)]
    assert states == [LineState.CONFIRMED, LineState.AWAITING_RESPONSE, LineState.AWAITING_RESPONSE]


def test_unit_prices_show_at_least_two_decimals_and_every_decimal_they_have(app, trade):
    from flask import render_template_string

    with app.test_request_context("/"):
        shown = [render_template_string("{{ v|price }}", v=v) for v in (Decimal("14.5000"), Decimal("0.0125"),
                                                                         Decimal("1234.5"), Decimal("10"))]  # fmt: skip
        plain = render_template_string("{{ v|price(grouping=False) }}", v=Decimal("1234.5"))
    assert shown == ["14.50", "0.0125", "1,234.50", "10.00"]
    assert plain == "1234.50"
    _, _, order, _, seller, _ = trade
    assert "at 2.50 EUR" in seller.get(f"/orders/{order.id}").text.replace("\n", " ")


def test_quantities_read_without_trailing_zeros_in_the_history(trade):
    """The ledger keeps a line's quantity as the database gives it (100.000): the page shows 100."""
    _, _, order, (first, _, _), seller, _ = trade
    page = f"/orders/{order.id}"
    assert post_form(seller, page, f"/orders/{order.id}/accept-all", {}).status_code == 302
    history = seller.get(page).text.split("<h2>History</h2>")[1]
    assert f"100 on {first.requested_date}" in history and ".000" not in history


def test_an_approved_price_is_in_the_history(trade):
    """A price change makes no ledger entry (the ledger keeps quantities and dates): the history shows the
    supplier's proposal and the buyer's approval, each with the price and who made it."""
    from portal.auth.services import Actor

    session, _, order, (first, _, _), seller, _ = trade
    svc.respond(session, order=order, expected_version=None, actor=Actor(None, "supplier", ""),
                answers=[svc.LineAnswer(first.id, "accept", price=Decimal("2.75"))])  # fmt: skip
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    svc.decide(session, request=request, order=order, decision="approve", comment="", expected_version=None,
               actor=Actor(None, "buyer", ""))  # fmt: skip
    history = " ".join(seller.get(f"/orders/{order.id}").text.split("<h2>History</h2>")[1].split())
    proposed, approved = (history.index(f"Line 1: <strong>{kind}</strong> 2.75 EUR")
                          for kind in ("proposed a price", "approved the price"))  # fmt: skip
    assert proposed < approved


def test_a_stale_form_gets_a_conflict_not_an_overwrite(trade):
    _, _, order, (first, _, _), seller, _ = trade
    page = f"/orders/{order.id}"
    html = seller.get(page).text
    token, stale = csrf_from(html), re.search(r'name="version" value="(\d+)"', html).group(1)
    assert post_form(seller, page, f"/orders/{order.id}/accept-all", {}).status_code == 302
    again = seller.post(
        f"/orders/{order.id}/respond", {"csrf_token": token, "version": stale, f"line-{first.id}-action": "accept"}
    )
    assert again.status_code == 409 and "changed since you opened it" in again.text


def test_the_ship_form_says_why_a_line_has_nothing_to_ship(trade):
    from portal.auth.services import Actor

    session, _, order, (first, second, third), seller, _ = trade
    actor = Actor(None, "test", "")
    later = second.requested_date + timedelta(days=6)  # outside the tolerance: the buyer decides
    svc.respond(session, order=order, expected_version=None, actor=actor, answers=[
        svc.LineAnswer(first.id, "accept", ()),
        svc.LineAnswer(second.id, "change", (svc.Delivery(Decimal("40"), later),)),
    ])  # fmt: skip
    rows = seller.get(f"/orders/{order.id}/ship").text.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")
    assert f'name="ship-{first.id}"' in rows[0]
    assert f'name="ship-{second.id}"' not in rows[1] and "waiting for the buyer to decide" in rows[1]
    assert f'name="ship-{third.id}"' not in rows[2] and "not confirmed yet" in rows[2]


def test_repromise_ship_and_cancel_notice(trade):
    session, _, order, (first, second, _third), seller, _buyer = trade
    page = f"/orders/{order.id}"
    post_form(seller, page, f"/orders/{order.id}/accept-all", {})
    new_date = (first.requested_date + timedelta(days=1)).isoformat()
    missing_reason = post_form(
        seller,
        page,
        f"/orders/{order.id}/lines/{first.id}/promise",
        {f"promise-{first.id}-qty-1": "100", f"promise-{first.id}-date-1": new_date},
    )
    assert missing_reason.status_code == 422 and "Choose a reason" in missing_reason.text
    ok = post_form(
        seller,
        page,
        f"/orders/{order.id}/lines/{first.id}/promise",
        {
            f"promise-{first.id}-qty-1": "100",
            f"promise-{first.id}-date-1": new_date,
            f"promise-{first.id}-reason": "transport",
        },
    )
    assert ok.status_code == 302
    ship_page = f"/orders/{order.id}/ship"
    blank = seller.get(ship_page).text
    ship_date = re.search(r'<input[^>]*name="ship_date"[^>]*>', blank).group(0)
    assert f'value="{date.today().isoformat()}"' in ship_date  # shipped today, unless changed
    assert f'name="ship-{first.id}"' in blank and 'placeholder="up to 100"' in blank
    too_much = post_form(
        seller,
        ship_page,
        ship_page,
        {
            f"ship-{first.id}": "150",
            "ship_date": date.today().isoformat(),
            "expected_arrival": (date.today() + timedelta(days=2)).isoformat(),
        },
    )
    assert too_much.status_code == 422 and "At most 100 pc can ship" in too_much.text  # not "100.000"
    filled = seller.get(f"{ship_page}?fill=all").text
    assert "Fill in everything that can ship" in blank
    assert f'name="ship-{first.id}" inputmode="decimal"' in filled
    shown = dict(re.findall(r'name="ship-(\d+)"[^>]*value="([^"]*)"', filled))
    assert shown == {str(first.id): "100", str(second.id): "40", str(_third.id): "12"}
    assert all(value == "" for value in re.findall(r'name="ship-\d+"[^>]*value="([^"]*)"', blank))
    sent = post_form(
        seller,
        ship_page,
        ship_page,
        {
            f"ship-{first.id}": "100",
            f"ship-{second.id}": "10",
            "ship_date": date.today().isoformat(),
            "expected_arrival": (date.today() + timedelta(days=2)).isoformat(),
            "carrier": "DHL",
            "tracking_number": "T1",
        },
    )
    assert sent.status_code == 302
    html = seller.get(page).text
    assert f"{order.number}-ASN1" in html and "partially shipped" in html
    notice_id = re.search(r"/ship-notices/(\d+)/cancel", html).group(1)
    cancelled = post_form(seller, page, f"/orders/{order.id}/ship-notices/{notice_id}/cancel", {})
    assert cancelled.status_code == 302
    session.expire_all()
    assert session.get(type(first), first.id).shipped_quantity == 0


def test_files_travel_with_order_messages_to_whoever_sees_the_order(trade, app, tmp_path):
    """A supplier attaches a drawing and a photo to a message; the buyer sees them named under it and downloads
    them as they were sent. A message may be files alone. A refused file (its name in the message) refuses the
    whole message and keeps nothing; more than five files are refused too. Another supplier's person of the same
    tenant, and another tenant's buyer, get 404 for the file."""
    import io
    from pathlib import Path

    from portal.orders.models import OrderMessageFile
    from tests.pdfs import CLEAN_PDF, JAVASCRIPT_PDF, PNG

    session, tenant, order, _, seller, buyer = trade
    page = f"/orders/{order.id}"
    app.config["DOCUMENT_ROOT"] = str(tmp_path / "files")
    stored = Path(app.config["DOCUMENT_ROOT"])

    def kept_files() -> int:
        return sum(1 for path in stored.rglob("*") if path.is_file()) if stored.exists() else 0

    def send(client: PortalClient, body: str, *files: tuple[str, bytes]):  # type: ignore[no-untyped-def]
        html = client.get(page).text
        data = {"csrf_token": csrf_from(html), "body": body,
                "files": [(io.BytesIO(content), name) for name, content in files]}  # fmt: skip
        return client.post(f"/orders/{order.id}/messages", data, content_type="multipart/form-data")

    assert 'enctype="multipart/form-data"' in seller.get(page).text
    before = kept_files()
    refused = send(seller, "Drawing and a macro", ("drawing.pdf", CLEAN_PDF), ("macro.pdf", JAVASCRIPT_PDF))
    assert refused.status_code == 422 and "macro.pdf: " in refused.text
    too_many = send(seller, "Six", *((f"page-{n}.png", PNG) for n in range(6)))
    assert too_many.status_code == 422 and "Attach at most 5 files to a message." in too_many.text
    nothing = send(seller, "  ")
    assert nothing.status_code == 422 and "Write a message or attach a file." in nothing.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(OrderMessage)).first() is None and kept_files() == before

    sent = send(seller, "The drawing, revision C, and a photo of the sample", ("drawing-C.pdf", CLEAN_PDF),
                ("sample.png", PNG))  # fmt: skip
    assert sent.status_code == 302
    alone = send(seller, "", ("certificate-3.1.pdf", CLEAN_PDF))
    assert alone.status_code == 302
    assert kept_files() == before + 3
    html = buyer.get(page).text
    links = re.findall(rf'<a href="(/orders/{order.id}/messages/\d+/files/\d+)">([^<]+)</a>', html)
    assert [name for _, name in links] == ["drawing-C.pdf", "sample.png", "certificate-3.1.pdf"]
    for (url, name), content in zip(links, (CLEAN_PDF, PNG, CLEAN_PDF), strict=True):
        got = buyer.get(url)
        assert got.status_code == 200 and got.data == content
        assert (
            got.headers["Content-Disposition"].startswith("attachment") and name in got.headers["Content-Disposition"]
        )
        assert got.headers["Content-Security-Policy"] == "sandbox"
    assert seller.get(links[0][0]).status_code == 200
    files = session.execute(select(OrderMessageFile).order_by(OrderMessageFile.id)).scalars().all()
    assert [(f.original_name, f.content_type, f.size) for f in files] == [
        ("drawing-C.pdf", "application/pdf", len(CLEAN_PDF)), ("sample.png", "image/png", len(PNG)),
        ("certificate-3.1.pdf", "application/pdf", len(CLEAN_PDF)),
    ]  # fmt: skip

    # The file is reached only through its own order and message.
    first = files[0]
    other_order = make_order(session, tenant, session.get(Supplier, order.supplier_id), [("1", "1", 5)])
    for wrong in (f"/orders/{other_order.id}/messages/{first.message_id}/files/{first.id}",
                  f"/orders/{order.id}/messages/{first.message_id + 1}/files/{first.id}"):  # fmt: skip
        assert buyer.get(wrong).status_code == 404
    rival = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant, "Rival Parts"))
    rival_client = PortalClient(app.test_client())
    rival_client.sign_in(rival.email, PASSWORD, rival.secret)
    assert rival_client.get(links[0][0]).status_code == 404
    elsewhere = make_tenant(session, "Elsewhere Trading")
    stranger = make_member(session, elsewhere, Role.BUYER)
    stranger_client = PortalClient(app.test_client())
    stranger_client.sign_in(stranger.email, PASSWORD, stranger.secret)
    assert stranger_client.get(links[0][0]).status_code == 404


def test_a_delivery_plan_in_a_spreadsheet_travels_with_a_message(trade, app, tmp_path):
    """A supplier sends its delivery plan as XLSX and CSV; the buyer downloads both as sent, with their content
    types, as attachments. A macro-enabled workbook refuses the message, named, and keeps nothing."""
    import io

    from portal.orders.models import OrderMessageFile
    from tests.office import MACRO_XLSX, XLSX
    from tests.test_attachments import CSV

    session, tenant, order, _, seller, buyer = trade
    app.config["DOCUMENT_ROOT"] = str(tmp_path / "files")
    page = f"/orders/{order.id}"
    html = seller.get(page).text
    assert "XLSX, DOCX, PPTX, CSV, TXT or STEP" in html and 'accept=".csv,.docx,' in html

    def send(client: PortalClient, body: str, *files: tuple[str, bytes]):  # type: ignore[no-untyped-def]
        data = {"csrf_token": csrf_from(client.get(page).text), "body": body,
                "files": [(io.BytesIO(content), name) for name, content in files]}  # fmt: skip
        return client.post(f"/orders/{order.id}/messages", data, content_type="multipart/form-data")

    refused = send(seller, "With a macro", ("plan.xlsx", XLSX), ("tools.xlsx", MACRO_XLSX))
    assert refused.status_code == 422 and "tools.xlsx: The XLSX file contains macros" in refused.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(OrderMessage)).first() is None
    assert not (tmp_path / "files").exists() or not any(p.is_file() for p in (tmp_path / "files").rglob("*"))

    assert send(seller, "Our delivery plan", ("plan.xlsx", XLSX), ("plan.csv", CSV)).status_code == 302
    links = re.findall(rf'<a href="(/orders/{order.id}/messages/\d+/files/\d+)">([^<]+)</a>', buyer.get(page).text)
    assert [name for _, name in links] == ["plan.xlsx", "plan.csv"]
    xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for (url, _), content, content_type in zip(links, (XLSX, CSV), (xlsx_type, "text/csv"), strict=True):
        got = buyer.get(url)
        assert got.status_code == 200 and got.data == content
        assert got.headers["Content-Type"].split(";")[0] == content_type
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert got.headers["X-Content-Type-Options"] == "nosniff"
    stored = session.execute(select(OrderMessageFile.content_type).order_by(OrderMessageFile.id)).scalars().all()
    assert stored == [xlsx_type, "text/csv"]


def test_buyer_counters_and_messages_are_exchanged(trade):
    session, tenant, order, (first, _, _), seller, buyer = trade
    page = f"/orders/{order.id}"
    post_form(
        seller,
        page,
        f"/orders/{order.id}/respond",
        {f"line-{first.id}-action": "accept", f"line-{first.id}-price": "2.90"},
    )
    set_context(session, tenant_id=tenant.id)
    request_id = session.execute(select(ChangeRequest.id).where(ChangeRequest.line_id == first.id)).scalar_one()
    no_comment = post_form(buyer, page, f"/change-requests/{request_id}/decide", {"decision": "counter"})
    assert no_comment.status_code == 422 and "comment is required" in no_comment.text
    countered = post_form(
        buyer, page, f"/change-requests/{request_id}/decide", {"decision": "counter", "comment": "2.60 at most"}
    )
    assert countered.status_code == 302
    session.expire_all()
    assert session.get(ChangeRequest, request_id).state == ChangeState.COUNTERED
    assert "2.60 at most" in seller.get(page).text
    html = seller.get(page).text
    sent = seller.post(f"/orders/{order.id}/messages", {"csrf_token": csrf_from(html), "body": "Can do 2.70?"})
    assert sent.status_code == 302
    assert "Can do 2.70?" in buyer.get(page).text
    written = session.execute(select(OrderMessage)).scalar_one()
    assert written.from_supplier is True and written.body == "Can do 2.70?"
    # Written with its event, for the workers to tell the buyers.
    event = session.execute(select(OutboxEvent).where(OutboxEvent.topic == "order.message")).scalar_one()
    assert event.payload == {"order_id": order.id, "message_id": written.id}


def test_a_buyer_reminds_the_supplier_from_the_queue_once_a_day(trade):
    """The response queue's Remind button for an unanswered order: a success message and the time of the
    reminder in its place; asked again from the order page the same day, a clear refusal and nothing written.
    The supplier sees no such button."""
    session, tenant, order, _, seller, buyer = trade
    queue = buyer.get("/orders/queue").text
    form = re.search(rf'<form method="post" action="/orders/{order.id}/remind"[^>]*>(.*?)</form>', queue, re.S)
    assert form and f'aria-label="Remind Acme Orders to answer {order.number}"' in form.group(1)
    reminded = buyer.post(f"/orders/{order.id}/remind", {"csrf_token": csrf_from(queue), "back": "queue"})
    assert reminded.status_code == 303 and reminded.headers["Location"].endswith("/orders/queue")
    queue = buyer.get("/orders/queue").text
    assert f"The supplier was reminded to answer order {order.number}." in queue
    cell = re.search(rf'data-testid="reminder-{order.id}">([^<]*)<', queue).group(1)
    assert re.fullmatch(r"reminded \d{4}-\d\d-\d\d \d\d:\d\d UTC", cell.strip())
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(OutboxEvent).where(OutboxEvent.topic == "order.reminded")).scalar_one()

    page_url = f"/orders/{order.id}"
    page = buyer.get(page_url).text
    assert 'data-testid="order-reminded"' in page and "Remind the supplier" in page
    again = buyer.post(f"/orders/{order.id}/remind", {"csrf_token": csrf_from(page)})
    assert again.status_code == 303 and again.headers["Location"].endswith(f"/orders/{order.id}")
    assert "one reminder a day at most" in buyer.get(f"/orders/{order.id}").text
    assert len(session.execute(select(OutboxEvent).where(OutboxEvent.topic == "order.reminded")).all()) == 1
    assert "Remind the supplier" not in seller.get(f"/orders/{order.id}").text

    # An order reminded again (by exception detection, when the tenant repeats reminders) says how often.
    session.execute(update(PurchaseOrder).where(PurchaseOrder.id == order.id).values(reminder_count=3))
    assert "(3 reminders)" in buyer.get("/orders/queue").text and "(3 reminders)" in buyer.get(page_url).text


def test_inbox_tabs_filters_and_search(trade):
    _, _, order, _, seller, buyer = trade
    inbox = seller.get("/orders")
    assert inbox.status_code == 200 and order.number in inbox.text
    assert f'<a href="/orders/{order.id}">{order.number}</a>' in inbox.text
    assert re.search(r"Needs response <span class=\"count\">1</span>", inbox.text)
    assert order.number not in seller.get("/orders?tab=closed").text
    assert order.number in seller.get(f"/orders?tab=all&q={order.number[:4]}").text
    assert order.number in seller.get("/orders?tab=all&q=P-002").text
    assert order.number not in seller.get("/orders?tab=all&q=NOPE").text
    assert buyer.get("/orders?tab=bogus&sort=bogus&due_from=nope&page=x").status_code == 200
    # A trailing slash, typed or pasted, opens the same pages.
    slashed = seller.get("/orders/?tab=all")
    assert slashed.status_code == 200 and f'<a href="/orders/{order.id}">{order.number}</a>' in slashed.text
    assert order.number in seller.get(f"/orders/{order.id}/").text


def test_a_buyers_page_says_when_a_tab_has_more_orders_than_it_counts(trade, monkeypatch):
    from portal.orders import queries

    _, _, order, _, seller, buyer = trade
    monkeypatch.setattr(queries, "COUNT_CAP", 0)
    page = buyer.get("/orders?tab=all").text
    assert 'All <span class="count">0+</span>' in page and "The pages show the first 0 orders" in page
    assert order.number in page
    mine = seller.get("/orders?tab=all").text  # a supplier's own orders are always counted exactly
    assert 'All <span class="count">1</span>' in mine and "The pages show the first" not in mine


def test_a_buyer_finds_one_suppliers_orders_by_code_or_name(trade):
    """Buyers search suppliers instead of picking from a list (a tenant may have thousands); a link to one
    supplier's orders names it, with a way back to every supplier."""
    session, tenant, order, _, _, buyer = trade
    other = make_order(session, tenant, make_supplier(session, tenant, "Globex 100% Parts"), [("5", "1.00", 7)])
    code = session.get(Supplier, order.supplier_id).code

    def listed(query: str) -> set[str]:
        page = buyer.get(f"/orders?tab=all&{query}")
        assert page.status_code == 200
        return {number for number in (order.number, other.number) if number in page.text}

    assert '<select name="supplier"' not in buyer.get("/orders?tab=all").text
    assert listed("") == {order.number, other.number}
    assert listed("supplier_q=acme") == listed("supplier_q=ORDERS") == {order.number}  # any part of the name
    assert listed(f"supplier_q={code.lower()}") == {order.number}  # the code, whatever its case
    assert listed("supplier_q=100%25") == {other.number}  # % is a character, not a wildcard
    assert listed("supplier_q=%25") == {other.number}
    assert listed("supplier_q=_") == set()
    assert listed("supplier_q=Nobody") == set()
    chosen = buyer.get(f"/orders?tab=all&supplier={order.supplier_id}").text
    assert "Supplier: Acme Orders" in chosen and other.number not in chosen
    assert 'href="/orders?tab=all" aria-label="Show every supplier"' in chosen
    # Another tenant's supplier id names nothing and lists nothing.
    foreign = make_supplier(session, make_tenant(session), "Elsewhere Ltd")
    set_context(session, tenant_id=tenant.id)
    page = buyer.get(f"/orders?tab=all&supplier={foreign.id}").text
    assert "Elsewhere Ltd" not in page and order.number not in page


@contextmanager
def count_queries(engine):  # type: ignore[no-untyped-def]
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_inbox_order_page_and_ship_form_issue_a_fixed_number_of_queries(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    small = make_order(session, tenant, supplier, [("5", "1", 5)])
    engine = app.extensions["portal.db"].engine
    forget_choices()  # each count includes the ship-to choices' read (kept a minute per process)
    with count_queries(engine) as few:
        assert client.get("/orders?tab=all").status_code == 200
    with count_queries(engine) as few_page:
        assert client.get(f"/orders/{small.id}").status_code == 200
    svc.accept_all(session, order=small, expected_version=None, actor=svc_actor())
    with count_queries(engine) as few_ship:
        assert client.get(f"/orders/{small.id}/ship").status_code == 200
    big = make_order(session, tenant, supplier, [(str(n + 1), "1", 5 + n) for n in range(20)])
    svc.accept_all(session, order=big, expected_version=None, actor=svc_actor())
    for _ in range(30):
        make_order(session, tenant, supplier, [("1", "1", 3)])
    forget_choices()
    with count_queries(engine) as many:
        assert client.get("/orders?tab=all").status_code == 200
    with count_queries(engine) as many_page:
        assert client.get(f"/orders/{big.id}").status_code == 200
    with count_queries(engine) as many_ship:
        assert client.get(f"/orders/{big.id}/ship").status_code == 200
    assert len(many) == len(few)
    assert len(many_page) == len(few_page)
    assert len(many_ship) == len(few_ship)  # what each line can ship: one statement for all of them


def test_shipments_on_their_way_list_the_notices_in_transit_soonest_first(app, session):
    """The receiving team's list: notices sent and not yet received or cancelled, the soonest expected first,
    the overdue ones flagged; filtered by ship-to, supplier and arrival dates; a supplier's people see their
    own shipments only. Its statements do not grow with its rows."""
    tenant = make_tenant(session)
    acme, bolt = make_supplier(session, tenant, "Acme Transit"), make_supplier(session, tenant, "Bolt Transit")
    today = date.today()

    def shipped(supplier: Supplier, arrives_in: int, lines: int = 1):  # type: ignore[no-untyped-def]
        order = make_order(session, tenant, supplier, [("10", "1.00", 5)] * lines)
        svc.accept_all(session, order=order, expected_version=None, actor=svc_actor())
        notice = svc.create_ship_notice(
            session, order=order, quantities={line.id: Decimal("10") for line in svc.order_lines(session, order)},
            shipment=svc.ShipmentInput(today - timedelta(days=3), today + timedelta(days=arrives_in), "DHL", "JD1"),
            expected_version=None, actor=svc_actor(),
        )  # fmt: skip
        return order, notice

    late_order, late = shipped(acme, -2)
    soon_order, soon = shipped(bolt, 1, lines=2)
    arrived_order, arrived = shipped(acme, 0)
    (arrived_line,) = svc.order_lines(session, arrived_order)
    svc.record_receipt(session, order=arrived_order, line=arrived_line, quantity=Decimal("10"), received_on=today,
                       actor=svc_actor())  # fmt: skip
    cancelled_order, cancelled = shipped(bolt, 3)
    svc.cancel_ship_notice(session, order=cancelled_order, notice=cancelled, expected_version=None,
                           actor=svc_actor())  # fmt: skip
    # Of the soon notice's two lines, one has arrived in full and one in part: it is still on its way.
    for line, came in zip(svc.order_lines(session, soon_order), ("10", "4"), strict=True):
        svc.record_receipt(session, order=soon_order, line=line, quantity=Decimal(came), received_on=today,
                           actor=svc_actor())  # fmt: skip

    buyer = PortalClient(app.test_client())
    person = make_member(session, tenant, Role.BUYER)
    buyer.sign_in(person.email, PASSWORD, person.secret)
    seller = PortalClient(app.test_client())
    acme_person = make_member(session, tenant, Role.SUPPLIER_USER, supplier=acme)
    seller.sign_in(acme_person.email, PASSWORD, acme_person.secret)

    def listed(client: PortalClient, query: str = "") -> list[str]:
        html = client.get(f"/orders/arrivals{query}").text
        return re.findall(r'<td class="nowrap">([^<]+-ASN\d+)', html)

    page = buyer.get("/orders/arrivals").text
    assert listed(buyer) == [late.number, soon.number]  # neither the received nor the cancelled one
    assert "1 shipment is past the expected arrival." in page and "2 days overdue" in page
    assert f'href="/orders/{late_order.id}"' in page and arrived.number not in page and cancelled.number not in page
    assert f'href="/orders/{soon_order.id}/ship-notices/{soon.id}.pdf"' in page and "Bolt Transit" in page
    assert '<td class="num">2<br><small class="muted">1 arrived, 1 in part</small></td>' in page
    assert '<td class="num">1</td>' in page  # the late notice: nothing of it has arrived
    order_page = buyer.get(f"/orders/{soon_order.id}").text
    assert "#1: 10 (10 arrived), #2: 10 (4 arrived)" in order_page
    assert listed(seller) == [late.number]  # Acme's people: their own shipments
    assert "Bolt Transit" not in seller.get("/orders/arrivals").text
    assert listed(buyer, f"?warehouse={soon_order.warehouse_id}") == [soon.number]
    assert listed(buyer, f"?from={today.isoformat()}") == [soon.number]
    assert listed(buyer, f"?to={today.isoformat()}") == [late.number]
    assert listed(buyer, "?supplier_q=Bolt") == [soon.number]
    assert listed(buyer, "?from=not-a-date&page=99999999999999999999") == [late.number, soon.number]
    assert "No shipments on their way for these filters." in buyer.get("/orders/arrivals?supplier_q=Nobody").text

    engine = app.extensions["portal.db"].engine
    forget_choices()
    with count_queries(engine) as few:
        assert buyer.get("/orders/arrivals").status_code == 200
    for _ in range(4):
        shipped(acme, 2, lines=3)
    forget_choices()
    with count_queries(engine) as many:
        assert len(listed(buyer)) == 6
    assert len(many) == len(few)


def test_ship_to_choices_are_the_tenants_own_and_follow_new_warehouses_within_a_minute(app, session, monkeypatch):
    from portal.tenancy import services as tenancy
    from tests.factories import make_company_with_warehouse

    def ship_to_options(client: PortalClient) -> list[str]:
        page = client.get("/orders?tab=all").text
        return re.findall(
            r'<option value="\d+"[^>]*>([^<]+)</option>', page.split('name="warehouse"')[1].split("</select>")[0]
        )

    signed_in = []
    for _ in range(2):
        tenant = make_tenant(session)
        _, warehouse = make_company_with_warehouse(session, tenant)
        supplier = make_supplier(session, tenant)
        seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
        client = PortalClient(app.test_client())
        client.sign_in(seller.email, PASSWORD, seller.secret)
        signed_in.append((tenant, warehouse, client))
    (first, first_warehouse, first_client), (_, second_warehouse, second_client) = signed_in
    assert ship_to_options(first_client) == [first_warehouse.name]
    assert ship_to_options(second_client) == [second_warehouse.name]  # each tenant's own, never the other's

    _, added = make_company_with_warehouse(session, first)
    assert ship_to_options(first_client) == [first_warehouse.name]  # kept for a minute
    monkeypatch.setattr(tenancy, "SHIP_TO_CHOICES_SECONDS", 0.0)
    assert ship_to_options(first_client) == sorted([first_warehouse.name, added.name])


def svc_actor():  # type: ignore[no-untyped-def]
    from portal.auth.services import Actor

    return Actor(None, "test", "")


def test_decimal_quantities_round_trip(trade):
    _, _, order, (first, _, _), seller, _ = trade
    page = f"/orders/{order.id}"
    done = post_form(
        seller,
        page,
        f"/orders/{order.id}/respond",
        {
            f"line-{first.id}-action": "change",
            f"line-{first.id}-qty-1": "95,5",
            f"line-{first.id}-date-1": first.requested_date.isoformat(),
        },
    )
    assert done.status_code == 302
    assert "95.5 on" in seller.get(page).text


def test_exceptions_are_ranked_by_value_at_risk(app, session):
    from portal.orders.models import DeliverySchedule

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant, days_later=30)
    buyer = make_member(session, tenant, Role.BUYER)
    actor = svc_actor()
    old = make_order(session, tenant, supplier, [("10", "1.00", 3)], order_date=date.today() - timedelta(days=10))
    risky = make_order(session, tenant, supplier, [("100", "5.00", 10)])
    late = make_order(session, tenant, supplier, [("50", "3.00", 2)], order_date=date.today() - timedelta(days=20))
    fine = make_order(session, tenant, supplier, [("5", "1.00", 10)])
    svc.accept_all(session, order=fine, expected_version=None, actor=actor)
    (risky_line,) = svc.order_lines(session, risky)
    svc.respond(
        session,
        order=risky,
        expected_version=None,
        actor=actor,
        answers=[
            svc.LineAnswer(
                risky_line.id, "change", (svc.Delivery(Decimal("100"), risky_line.requested_date + timedelta(days=5)),)
            )
        ],
    )
    svc.accept_all(session, order=late, expected_version=None, actor=actor)
    (late_line,) = svc.order_lines(session, late)
    svc.record_receipt(
        session, order=late, line=late_line, quantity=Decimal("20"), received_on=date.today(), actor=actor
    )
    assert (
        session.execute(
            select(DeliverySchedule.promised_date).where(
                DeliverySchedule.line_id == late_line.id, DeliverySchedule.active.is_(True)
            )
        ).scalar_one()
        < date.today()
    )
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    page = client.get("/orders/exceptions").text
    positions = [page.index(o.number) for o in (risky, late, old)]
    assert positions == sorted(positions)  # 500 at risk, then 90, then 10
    assert fine.number not in page
    # The promise beside the request: how far after it a line at risk is promised.
    risky_row = page[page.index(risky.number) :].split("</tr>")[0]
    promised = (risky_line.requested_date + timedelta(days=5)).isoformat()
    assert promised in risky_row and "5 days after the request" in risky_row
    # A late line: how many days since its promise passed.
    late_days = (date.today() - late_line.requested_date).days
    late_row = page[page.index(late.number) :].split("</tr>")[0]
    assert f"{late_days} days late" in late_row and "days late" not in risky_row
    assert late.number in client.get("/orders/exceptions?kind=partially_received").text
    assert old.number in client.get("/orders/exceptions?kind=unconfirmed").text
    # The same list as CSV, in the same order, with why each line is there and what is still open.
    import csv
    import io

    download = client.get("/orders/exceptions.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.data.decode())))
    assert [r["order"] for r in rows] == [risky.number, late.number, old.number]
    assert (rows[1]["open"], rows[1]["value_at_risk"]) == ("30", "90.00") and "Partially received" in rows[1]["why"]
    assert rows[0]["promised_from"] == rows[0]["promised_to"] == promised and rows[2]["promised_to"] == ""
    assert [r["days_late"] for r in rows] == ["", str(late_days), ""]
    filtered = client.get("/orders/exceptions.csv?kind=unconfirmed").data.decode()
    assert old.number in filtered and risky.number not in filtered
    assert 'href="/orders/exceptions.csv?kind=unconfirmed"' in client.get("/orders/exceptions?kind=unconfirmed").text
    assert risky.number not in client.get("/orders/exceptions?kind=late").text
    # The supplier filter: a search by code or part of the name, or a link to one supplier (named, with a way back).
    assert risky.number in client.get(f"/orders/exceptions?supplier_q={supplier.code.lower()}").text
    assert risky.number not in client.get("/orders/exceptions?supplier_q=no-such-supplier").text
    linked = client.get(f"/orders/exceptions?kind=late&supplier={supplier.id}").text
    assert f"Supplier: {supplier.name}" in linked and late.number in linked
    assert 'href="/orders/exceptions?kind=late" aria-label="Show every supplier"' in linked
    # By ship-to and company, with a kind or without: the order's own list it, another's do not.
    for kind in ("late", ""):
        for name, value in (("warehouse", late.warehouse_id), ("company", late.company_id)):
            assert late.number in client.get(f"/orders/exceptions?kind={kind}&{name}={value}").text
            assert late.number not in client.get(f"/orders/exceptions?kind={kind}&{name}={value + 1000}").text
    # By buyer, whose name each line shows: the orders that buyer placed, on the page and in its CSV.
    late.buyer_id = buyer.user.id
    session.flush()
    for kind in ("late", ""):
        mine = client.get(f"/orders/exceptions?kind={kind}&buyer={buyer.user.id}").text
        assert late.number in mine and risky.number not in mine
        assert f'<option value="{buyer.user.id}" selected>{buyer.user.name} (you)</option>' in mine
        assert late.number not in client.get(f"/orders/exceptions?kind={kind}&buyer={buyer.user.id + 1000}").text
    row = client.get("/orders/exceptions").text.split(f">{late.number}</a>")[1].split("</tr>")[0]
    assert f"<td>{buyer.user.name}</td>" in row
    exported = list(csv.DictReader(io.StringIO(client.get(f"/orders/exceptions.csv?buyer={buyer.user.id}").text)))
    assert [(r["order"], r["buyer"]) for r in exported] == [(late.number, buyer.user.name)]


def test_a_buyer_asks_the_suppliers_of_exception_lines_for_an_update(app, session):
    """Ticked on the exceptions page: one message on each order, naming its lines with what is open and promised,
    with the buyer's comment; the suppliers hear of it; back to the list as it was filtered. A foreign line answers
    404 and a closed one is refused, both before anything is written."""
    tenant = make_tenant(session)
    acme, bolt = make_supplier(session, tenant, "Acme Ask"), make_supplier(session, tenant, "Bolt Ask")
    buyer = make_member(session, tenant, Role.BUYER)
    past = date.today() - timedelta(days=10)
    first = make_order(session, tenant, acme, [("10", "1.00", 3), ("20", "2.00", 4)], order_date=past)
    second = make_order(session, tenant, bolt, [("5", "3.00", 5)], order_date=past)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    url = "/orders/exceptions?kind=unconfirmed"
    page = client.get(url).text
    boxes = dict(re.findall(r'name="line_id" value="(\d+)" form="ask-form" aria-label="Select ([^"]+)"', page))
    assert set(boxes.values()) == {f"{first.number} line 1", f"{first.number} line 2", f"{second.number} line 1"}
    assert f'name="back" value="{url}"' in page

    def ask(ids, comment: str = "", back: str = url):  # type: ignore[no-untyped-def]
        return client.post("/orders/exceptions/ask",
                           {"csrf_token": csrf_from(page), "line_id": [str(i) for i in ids], "comment": comment,
                            "back": back})  # fmt: skip

    def messages() -> list[OrderMessage]:
        set_context(session, tenant_id=tenant.id)
        return list(session.execute(select(OrderMessage).order_by(OrderMessage.id)).scalars())

    nothing = ask([])
    assert nothing.status_code == 303 and nothing.headers["Location"] == url
    assert "Tick the lines to ask the suppliers about." in client.get(url).text
    elsewhere = make_tenant(session, "Elsewhere Ask")
    foreign = make_order(session, elsewhere, make_supplier(session, elsewhere, "Far"), [("1", "1", 3)])
    (foreign_line,) = svc.order_lines(session, foreign)
    assert ask([int(next(iter(boxes))), foreign_line.id]).status_code == 404
    cancelled = make_order(session, tenant, acme, [("1", "1", 3)], order_date=past)
    (cancelled_line,) = svc.order_lines(session, cancelled)
    svc.cancel_line(
        session, order=cancelled, line=cancelled_line, reason="not needed", expected_version=None, actor=svc_actor()
    )
    refused = ask([int(next(iter(boxes))), cancelled_line.id])
    assert refused.status_code == 303 and "is cancelled: nothing to ask." in client.get(url).text
    assert messages() == []

    asked = ask(
        [int(i) for i in boxes], "Our customer is waiting: please answer by Friday.", back="https://evil.example"
    )
    assert asked.status_code == 303 and asked.headers["Location"] == "/orders/exceptions"
    assert "Asked 2 suppliers for an update on 3 lines (2 orders): a message on each order." in client.get(url).text
    written = messages()
    assert [m.order_id for m in written] == [first.id, second.id] and not any(m.from_supplier for m in written)
    lines = svc.order_lines(session, first)
    assert written[0].body.splitlines() == [
        "Please send us an update on these lines: a new promised date where one has slipped, or a ship notice.",
        *(f"- Line {line.position} · {line.product_code} {line.product_name}: {quantity(line.quantity)} {line.unit} "
          f"open, not answered yet, requested {line.requested_date.isoformat()}" for line in lines),
        "", "Our customer is waiting: please answer by Friday.",
    ]  # fmt: skip
    events = session.execute(select(OutboxEvent.payload).where(OutboxEvent.topic == "order.message")).scalars()
    assert sorted(e["message_id"] for e in events) == [m.id for m in written]  # their suppliers hear of them
    # The exceptions show when each line was asked about, the page and its CSV alike.
    page = client.get(url).text
    assert all(f'data-testid="asked-{i}">Update asked ' in page for i in boxes)
    exported = list(csv.DictReader(io.StringIO(client.get("/orders/exceptions.csv?kind=unconfirmed").text)))
    assert len(exported) == 3 and all(row["update_asked_at"].startswith(date.today().isoformat()) for row in exported)
    # Each line once a day at most, whoever asks: the same request again (a double submit), or another buyer's
    # with other words, sends nothing and says when the lines were asked about.
    assert ask([int(i) for i in boxes], "Our customer is waiting: please answer by Friday.").status_code == 303
    assert "These lines were asked about on " in client.get(url).text and len(messages()) == 2
    other = make_member(session, tenant, Role.BUYER)
    with pytest.raises(svc.ServiceError, match="once a day at most"):
        svc.ask_for_updates(session, tenant_id=tenant.id, line_ids=[int(i) for i in boxes], author_id=other.user.id,
                            author="Other", comment="Any news?")  # fmt: skip
    assert len(messages()) == 2
    # A line not yet asked about goes out with those that were, which are left out and counted.
    third = make_order(session, tenant, bolt, [("7", "1.50", 5)], order_date=past)
    (third_line,) = svc.order_lines(session, third)
    assert ask([*(int(i) for i in boxes), third_line.id], "Any news?").status_code == 303
    assert ("Asked 1 supplier for an update on 1 line (1 order): a message on each order. 3 lines were left out: "
            "asked about within the last day.") in client.get(url).text  # fmt: skip
    assert [m.order_id for m in messages()] == [first.id, second.id, third.id]
    # A day later they may be asked again.
    session.execute(update(PurchaseOrderLine).where(PurchaseOrderLine.id.in_([int(i) for i in boxes]))
                    .values(update_asked_at=utcnow() - timedelta(days=1, minutes=1)))  # fmt: skip
    assert ask([int(i) for i in boxes], "Any news?").status_code == 303
    assert [m.order_id for m in messages()][3:] == [first.id, second.id]


def test_an_update_request_for_a_long_order_lists_what_a_message_holds_and_counts_the_rest(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    buyer = make_member(session, tenant, Role.BUYER)
    order = make_order(session, tenant, supplier, [("10", "1.00", 5)] * 120)
    lines = svc.order_lines(session, order)
    for line in lines:
        line.product_name = f"Hexagon socket head cap screw, stainless A4-80, {line.position}"
    session.flush()
    asked = svc.ask_for_updates(session, tenant_id=tenant.id, line_ids=[line.id for line in lines],
                                author_id=buyer.user.id, author="Ben", comment="By Friday, please.")  # fmt: skip
    assert (asked.orders, asked.lines, asked.suppliers) == (1, 120, 1)
    (message,) = session.execute(select(OrderMessage)).scalars()
    listed = [row for row in message.body.splitlines() if row.startswith("- Line ")]
    assert 0 < len(listed) < 120 and len(message.body) <= svc.MESSAGE_MAX_LENGTH
    assert f"- and {120 - len(listed)} more lines" in message.body and message.body.endswith("By Friday, please.")
    assert listed[0].startswith("- Line 1 · P-001 Hexagon") and listed[-1].startswith(f"- Line {len(listed)} ·")


def test_admin_sets_tolerances_and_a_supplier_override_changes_routing(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = PortalClient(app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    bad = client.submit(
        "/orders/tolerances",
        {
            "quantity_under_pct": "-1",
            "quantity_over_pct": "5",
            "days_earlier": "2",
            "days_later": "x",
            "price_pct": "0",
        },
    )
    assert bad.status_code == 422 and "Number must be between 0 and 100" in bad.text
    values = {
        "quantity_under_pct": "10",
        "quantity_over_pct": "5",
        "days_earlier": "2",
        "days_later": "1",
        "price_pct": "0",
    }
    assert client.submit("/orders/tolerances", values).status_code == 302
    assert client.submit(f"/orders/tolerances/{supplier.id}", {**values, "days_later": "14"}).status_code == 302
    assert svc.tolerance_for(session, tenant.id, supplier.id).days_later == 14
    assert svc.tolerance_for(session, tenant.id, supplier.id + 999).days_later == 1
    assert supplier.name in client.get("/orders/tolerances").text
    other = make_tenant(session)
    foreign = make_supplier(session, other)
    assert client.get(f"/orders/tolerances/{foreign.id}").status_code == 404


def test_buyer_records_receipts_cancels_and_closes(trade):
    session, tenant, order, (first, second, third), seller, buyer = trade
    page = f"/orders/{order.id}"
    post_form(seller, page, f"/orders/{order.id}/accept-all", {})
    no_reason = post_form(buyer, page, f"/orders/{order.id}/lines/{third.id}/cancel", {"reason": ""})
    assert no_reason.status_code == 422 and "Give a reason for the cancellation." in no_reason.text
    assert (
        post_form(buyer, page, f"/orders/{order.id}/lines/{third.id}/cancel", {"reason": "not needed"}).status_code
        == 302
    )
    for line in (first, second):
        done = post_form(
            buyer,
            page,
            f"/orders/{order.id}/lines/{line.id}/receipts",
            {"quantity": str(line.quantity), "received_on": date.today().isoformat()},
        )
        assert done.status_code == 302
    zero = post_form(
        buyer,
        page,
        f"/orders/{order.id}/lines/{first.id}/receipts",
        {"quantity": "0", "received_on": date.today().isoformat()},
    )
    assert zero.status_code == 422
    assert post_form(buyer, page, f"/orders/{order.id}/close", {}).status_code == 302
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    assert session.get(PurchaseOrder, order.id).state == OrderState.CLOSED
    assert "Buyer actions" not in buyer.get(page).text  # nothing left to do on a closed order


def test_a_receipt_recorded_on_the_page_names_the_notice_scanned_from_its_packing_slip(trade):
    """The buyer's receipt form offers the line's notices and takes the number as scanned: that notice is
    settled, not the earlier one; a number that fits none is refused next to the line, and nothing is kept."""
    from portal.auth.services import Actor
    from portal.orders.models import Receipt, ShipNoticeState

    session, tenant, order, (first, second, _third), seller, buyer = trade
    page = f"/orders/{order.id}"
    assert post_form(seller, page, f"{page}/accept-all", {}).status_code == 302
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    early, later = (
        svc.create_ship_notice(session, order=order, quantities={first.id: Decimal("50")},
                               shipment=svc.ShipmentInput(date.today() - timedelta(days=n), date.today()),
                               expected_version=None, actor=Actor(None, "seller@example.org", ""))
        for n in (2, 1)
    )  # fmt: skip
    session.flush()
    html = buyer.get(page).text
    offered = re.search(rf'<datalist id="notices-{first.id}">(.*?)</datalist>', html).group(1)
    assert re.findall(r'<option value="([^"]+)"', offered) == [early.number, later.number]
    assert f'<datalist id="notices-{second.id}">' not in html  # no notice ships the second line

    receipts = f"{page}/lines/{first.id}/receipts"
    today = date.today().isoformat()
    ahead = post_form(buyer, page, receipts, {"quantity": "50", "received_on": "2099-01-04"})
    assert ahead.status_code == 422 and "2099-01-04 is in the future: enter the day the goods arrived." in ahead.text
    wrong = post_form(buyer, page, receipts, {"quantity": "50", "received_on": today, "ship_notice": "LS-0000"})
    assert wrong.status_code == 422
    assert f"Order {order.number} has no ship notice &#39;LS-0000&#39;." in wrong.text
    refused_form = wrong.text.split(f'action="{receipts}"')[1].split("</form>")[0]  # what was typed is kept
    assert 'value="50"' in refused_form and f'value="{today}"' in refused_form and 'value="LS-0000"' in refused_form
    assert wrong.text.count('value="LS-0000"') == 1  # in that line's form only
    session.expire_all()
    assert session.execute(select(Receipt.id).where(Receipt.tenant_id == tenant.id)).all() == []

    done = post_form(buyer, page, receipts, {"quantity": "50", "received_on": today, "ship_notice": later.number})
    assert done.status_code == 302
    assert f"Receipt recorded for line {first.position} against ship notice {later.number}." in buyer.get(page).text
    session.expire_all()
    assert (early.state, later.state) == (ShipNoticeState.SENT, ShipNoticeState.RECEIVED)


def test_the_receiving_team_receives_a_whole_shipment_from_the_list_or_the_order(trade):
    """*Received in full* on the shipments list records what is still to come of each line of the notice and
    comes back to the list as it was filtered; the order page has it too. A missing day is refused with nothing
    recorded, and a return address elsewhere is not followed."""
    from portal.auth.services import Actor
    from portal.orders.models import Receipt, ShipNoticeState

    session, tenant, order, (first, second, _third), seller, buyer = trade
    page = f"/orders/{order.id}"
    assert post_form(seller, page, f"{page}/accept-all", {}).status_code == 302
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    by_seller = Actor(None, "seller@example.org", "")
    one, two = (
        svc.create_ship_notice(session, order=order, quantities={line.id: line.quantity},
                               shipment=svc.ShipmentInput(date.today(), date.today()), expected_version=None,
                               actor=by_seller)
        for line in (first, second)
    )  # fmt: skip
    session.flush()
    listing = "/orders/arrivals?supplier_q=Acme"
    html = buyer.get(listing).text
    action = f"/orders/{order.id}/ship-notices/{one.id}/receive"
    assert f'action="{action}"' in html and 'name="back" value="/orders/arrivals?supplier_q=Acme"' in html
    assert "Received in full" not in seller.get("/orders/arrivals").text  # the supplier's people do not receive

    token = csrf_from(html)
    undated = buyer.post(action, {"csrf_token": token, "received_on": "", "back": listing})
    assert undated.status_code == 303 and undated.headers["Location"] == listing
    assert "Enter the day the goods arrived." in buyer.get(listing).text
    ahead = buyer.post(action, {"csrf_token": token, "received_on": "2099-01-04", "back": listing})
    assert ahead.status_code == 303 and "2099-01-04 is in the future" in buyer.get(listing).text
    assert session.execute(select(Receipt.id).where(Receipt.tenant_id == tenant.id)).all() == []

    today = date.today().isoformat()
    done = buyer.post(action, {"csrf_token": token, "received_on": today, "back": listing})
    assert done.status_code == 303 and done.headers["Location"] == listing
    after = buyer.get(listing).text
    assert f"Ship notice {one.number} received (line 1: 100 pc)." in after
    assert one.number not in after.split("<table")[1]  # no longer on its way
    again = buyer.post(action, {"csrf_token": token, "received_on": today, "back": listing})
    assert again.status_code == 303
    assert f"Ship notice {one.number} has been received already." in buyer.get(listing).text

    on_order_page = f'action="/orders/{order.id}/ship-notices/{two.id}/receive"'
    assert on_order_page in buyer.get(page).text and on_order_page not in seller.get(page).text
    elsewhere = buyer.post(f"/orders/{order.id}/ship-notices/{two.id}/receive",
                           {"csrf_token": csrf_from(buyer.get(page).text), "received_on": today,
                            "back": "https://evil.example/orders/arrivals"})  # fmt: skip
    assert elsewhere.status_code == 303 and elsewhere.headers["Location"] == page
    session.expire_all()
    assert (one.state, two.state) == (ShipNoticeState.RECEIVED, ShipNoticeState.RECEIVED)
    assert (first.received_quantity, second.received_quantity) == (first.quantity, second.quantity)


def test_row_url_builds_each_row_link_as_url_for_would(app):
    from flask import render_template_string, url_for
    from markupsafe import escape

    with app.test_request_context("/"):
        links = render_template_string(
            "{% set card = row_url('scorecards.supplier', 'supplier_id', period='month', at='2026-01-31') %}"
            "{{ card(7) }} {{ card(1234) }}"
        )
        assert links.split() == [  # escaped in HTML as url_for's output would be
            str(escape(url_for("scorecards.supplier", supplier_id=supplier, period="month", at="2026-01-31")))
            for supplier in (7, 1234)
        ]
        as_query = render_template_string("{{ row_url('orders.inbox', 'page', tab='all')(3) }}")
        assert as_query == str(escape(url_for("orders.inbox", tab="all", page=3)))


# The inbox rows as they were written in Jinja: ``portal.orders.rows.inbox_rows`` must make exactly this.
_INBOX_ROWS_IN_JINJA = (
    '{% for o in rows %}<tr><td><a href="{{ order_url(o.id) }}">{{ o.number }}</a></td>'
    "{% if show_supplier %}<td>{{ o.supplier }}</td>{% endif %}"
    "<td>{{ o.order_date }}</td><td>{{ o.due_date or '—' }}</td><td>{{ o.warehouse }}</td><td>{{ o.buyer or '—' }}</td>"
    '<td><span class="state {{ o.state.value }}">{{ o.state.label }}</span></td>'
    '<td class="num">{{ o.total_value|money }} {{ o.currency }}</td></tr>'
    "{% if not loop.last %}\n{% endif %}{% endfor %}"
)


@pytest.mark.parametrize("show_supplier", [True, False])
@pytest.mark.parametrize("link", ["row_url", "query with &"])
def test_inbox_rows_are_the_jinja_rows_with_every_text_escaped(app, show_supplier, link):
    from collections import namedtuple

    from flask import render_template_string

    from portal.orders.rows import inbox_rows

    Row = namedtuple("Row", "id number supplier order_date due_date warehouse buyer state total_value currency")
    markup = "<script>alert(\"x\")</script> & 'q'"
    rows = [
        Row(7, f"PO-{markup}", f"Acme {markup}", date(2026, 1, 2), None, f"Dock {markup}", f"Bo {markup}",
            OrderState.AWAITING_RESPONSE, Decimal("12543.5"), "<b>"),
        Row(1234, "PO-2", "Beta", date(2026, 2, 3), date(2026, 3, 4), "Main", None, OrderState.CHANGES_PENDING,
            Decimal("0"), "EUR"),
        *(Row(i, f"PO-{i}", "S", date(2026, 1, 1), date(2026, 1, 9), "W", "B", state, Decimal(i), "USD")
          for i, state in enumerate(OrderState, start=10)),
    ]  # fmt: skip
    with app.test_request_context("/"):
        if link == "row_url":
            order_url = app.jinja_env.globals["row_url"]("orders.order_page", "order_id")
        else:
            order_url = lambda order_id: f"/orders?a=1&id={order_id}"  # noqa: E731
        made = inbox_rows(rows, order_url, show_supplier=show_supplier)
        written = render_template_string(_INBOX_ROWS_IN_JINJA, rows=rows, order_url=order_url,
                                         show_supplier=show_supplier)  # fmt: skip
    assert str(made) == written
    assert "<script>" not in made and "<b>" not in made
    assert made.count("&lt;script&gt;") == (4 if show_supplier else 3)
    assert ("&amp;id=" in made) == (link != "row_url")


def test_choice_and_constant_links_are_what_url_for_makes(app):
    from flask import render_template_string, url_for
    from markupsafe import escape

    from portal.orders.queries import TAB_LABELS

    args = {"q": "PO 12&3/ä", "sort": "-due", "warehouse": "4"}
    with app.test_request_context("/"):
        tabs = render_template_string(
            "{% set tab_url = choice_url('orders.inbox', 'tab', **args) %}"
            "{% for key in keys %}{{ tab_url(key) }} {% endfor %}",
            args=args,
            keys=[*TAB_LABELS, "a b&c"],
        )
        assert tabs.split() == [str(escape(url_for("orders.inbox", tab=key, **args))) for key in [*TAB_LABELS, "a b&c"]]
    for root in ("", "/portal"):
        with app.test_request_context("/", base_url=f"http://localhost{root}"):
            made = render_template_string("{{ constant_url('static', filename='app.css') }} "
                                          "{{ constant_url('auth.logout') }}")  # fmt: skip
            # A static file's link carries its content's digest (served as immutable at that address).
            by_content = url_for("static", filename="app.css", v=app.static_digest("app.css"))
            assert made.split() == [by_content, url_for("auth.logout")]
            assert made.startswith(f"{root}/static/")


def test_amounts_show_thousands_separators_and_two_decimals(app):
    from flask import render_template_string

    with app.test_request_context("/"):
        shown = [render_template_string("{{ v|money }}", v=v) for v in (Decimal("12543"), Decimal("0.5"),
                                                                         Decimal("1234567.891"), 0)]  # fmt: skip
    assert shown == ["12,543.00", "0.50", "1,234,567.89", "0.00"]


def test_inbox_tab_counts_follow_the_tabs_definitions(session):
    """Each tab counts what it lists: late is any open order due before today (answered or not), received
    is shipped but never late, closed holds cancelled and rejected orders; filters apply to the counts; the
    orders of another supplier are not counted."""
    from portal.orders import queries
    from portal.web import PortalContext

    tenant = make_tenant(session)
    supplier, other = make_supplier(session, tenant), make_supplier(session, tenant)
    today = date.today()
    past, future = today - timedelta(days=3), today + timedelta(days=3)
    orders = {}
    for name, state, due in [
        ("awaiting", OrderState.AWAITING_RESPONSE, future), ("awaiting late", OrderState.AWAITING_RESPONSE, past),
        ("pending late", OrderState.CHANGES_PENDING, past), ("confirmed", OrderState.CONFIRMED, future),
        ("confirmed late", OrderState.CONFIRMED, past), ("confirmed undated", OrderState.CONFIRMED, None),
        ("shipped late", OrderState.SHIPPED, past), ("received", OrderState.RECEIVED, past),
        ("closed", OrderState.CLOSED, past), ("cancelled", OrderState.CANCELLED, past),
        ("rejected", OrderState.REJECTED, past),
    ]:  # fmt: skip
        order = make_order(session, tenant, supplier)
        order.state, order.due_date = state, due
        orders[name] = order
    make_order(session, tenant, other)  # awaiting, not this supplier's
    session.flush()
    context = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.SUPPLIER_USER,
                            supplier_id=supplier.id, supplier_name=supplier.name)  # fmt: skip

    page = queries.inbox(session, context, queries.InboxFilters(tab="late"), today)
    assert page.counts == {"needs_response": 2, "changes_pending": 1, "open": 3, "late": 4, "shipped": 2,
                           "closed": 3, "all": 11}  # fmt: skip
    assert {row.id for row in page.rows} == {orders[n].id for n in ("awaiting late", "pending late",
                                                                    "confirmed late", "shipped late")}  # fmt: skip
    assert page.total == 4
    one_warehouse = queries.InboxFilters(tab="all", warehouse_id=orders["awaiting late"].warehouse_id)
    counts = queries.inbox(session, context, one_warehouse, today).counts
    assert counts == {"needs_response": 1, "changes_pending": 0, "open": 0, "late": 1, "shipped": 0, "closed": 0,
                      "all": 1}  # fmt: skip


def test_a_buyers_tab_counts_cover_the_tenant_and_stop_at_the_cap(session, monkeypatch):
    """A buyer's inbox counts every supplier's orders tab by tab, exactly up to the cap; beyond it a tab reads
    "cap+" and its pages end at the cap, with a word on how to find the others."""
    from portal.orders import queries
    from portal.web import PortalContext

    tenant = make_tenant(session)
    first, second = make_supplier(session, tenant), make_supplier(session, tenant)
    today = date.today()
    for supplier, state, due in [
        (first, OrderState.AWAITING_RESPONSE, today + timedelta(days=3)),
        (first, OrderState.AWAITING_RESPONSE, today - timedelta(days=3)),
        (second, OrderState.CHANGES_PENDING, today - timedelta(days=1)),
        (second, OrderState.RECEIVED, today - timedelta(days=9)),
        (second, OrderState.CANCELLED, None),
    ]:
        order = make_order(session, tenant, supplier)
        order.state, order.due_date = state, due
    make_order(session, make_tenant(session), first)  # another tenant's order is never counted
    set_context(session, tenant_id=tenant.id)
    session.flush()
    buyer = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.BUYER,
                          supplier_id=None, supplier_name=None)  # fmt: skip
    page = queries.inbox(session, buyer, queries.InboxFilters(tab="all"), today)
    assert page.counts == {"needs_response": 2, "changes_pending": 1, "open": 0, "late": 2, "shipped": 1,
                           "closed": 1, "all": 5}  # fmt: skip
    assert not page.capped and page.count_label("all") == "5"

    monkeypatch.setattr(queries, "COUNT_CAP", 2)
    page = queries.inbox(session, buyer, queries.InboxFilters(tab="all"), today)
    labels = {tab: page.count_label(tab) for tab in queries.TAB_LABELS}
    assert labels == {"needs_response": "2", "changes_pending": "1", "open": "0", "late": "2", "shipped": "1",
                      "closed": "1", "all": "2+"}  # fmt: skip
    assert page.capped and page.pages == 1 and len(page.rows) == 5  # the first page is full as ever


def test_the_inbox_statements_built_once_serve_every_tenant_supplier_day_and_page(session, monkeypatch):
    """The unfiltered inbox's statements are built once per tab and sort and bound to each request's values:
    the same statement lists one supplier's orders, then another tenant's supplier's, then a buyer's whole
    tenant, counts late orders against the day asked, and pages with the offset asked."""
    from portal.orders import queries
    from portal.web import PortalContext

    def context_of(tenant, supplier=None):  # type: ignore[no-untyped-def]
        return PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name,
                             role=Role.SUPPLIER_USER if supplier else Role.BUYER,
                             supplier_id=supplier.id if supplier else None,
                             supplier_name=supplier.name if supplier else None)  # fmt: skip

    today = date.today()
    elsewhere = make_tenant(session)
    foreign = make_supplier(session, elsewhere)
    abroad = [make_order(session, elsewhere, foreign) for _ in range(2)]
    session.flush()
    tenant = make_tenant(session)
    supplier, neighbour = make_supplier(session, tenant), make_supplier(session, tenant)
    mine = [make_order(session, tenant, supplier) for _ in range(3)]
    theirs = make_order(session, tenant, neighbour)
    for days, order in enumerate(mine):
        order.state, order.due_date = OrderState.CONFIRMED, today + timedelta(days=days)
    session.flush()
    everything = queries.InboxFilters(tab="all")

    def ids(context, filters=everything, day=today):  # type: ignore[no-untyped-def]
        set_context(session, tenant_id=context.tenant_id)
        return [row.id for row in queries.inbox(session, context, filters, day).rows]

    assert ids(context_of(tenant, supplier)) == [o.id for o in mine]
    assert ids(context_of(elsewhere, foreign)) == sorted(o.id for o in abroad)
    assert set(ids(context_of(tenant))) == {o.id for o in (*mine, theirs)}
    # Late: due before the day asked (today's order is not late today, it is two days later).
    assert queries.inbox(session, context_of(tenant, supplier), everything, today).counts["late"] == 0
    assert (
        queries.inbox(session, context_of(tenant, supplier), everything, today + timedelta(days=2)).counts["late"] == 2
    )
    monkeypatch.setattr(queries, "PAGE_SIZE", 2)
    second_page = queries.InboxFilters(tab="all", page=2)
    assert ids(context_of(tenant, supplier), second_page) == [mine[2].id]
    assert queries.inbox(session, context_of(tenant, supplier), second_page, today).pages == 2


def test_the_inbox_sorts_by_due_date_either_way(session):
    """Due date first: earliest first, orders without one last; latest first: those without one first (the
    index of a supplier's orders by due date, read backwards)."""
    from portal.orders import queries
    from portal.web import PortalContext

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    today = date.today()
    dated = [make_order(session, tenant, supplier) for _ in range(3)]
    for days, order in enumerate(dated):
        order.due_date = today + timedelta(days=days)
    undated = make_order(session, tenant, supplier)
    undated.due_date = None
    session.flush()
    set_context(session, tenant_id=tenant.id)
    context = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.SUPPLIER_USER,
                            supplier_id=supplier.id, supplier_name=supplier.name)  # fmt: skip

    def ids(sort):  # type: ignore[no-untyped-def]
        page = queries.inbox(session, context, queries.InboxFilters(tab="all", sort=sort), today)
        return [row.id for row in page.rows]

    assert ids("due") == [*(o.id for o in dated), undated.id]
    assert ids("-due") == [undated.id, *(o.id for o in reversed(dated))]


def test_a_buyers_tabs_of_several_states_list_by_date_as_one_sorted_list(session, monkeypatch):
    """A buyer's late, shipped and closed tabs sorted by a date are merged from each state's orders in order:
    every page is the tab's orders in the sort's order (orders without a due date last, or first latest first;
    ties by id), with no order of another state or tenant, and the next page goes on where one ended."""
    from portal.orders import queries
    from portal.web import PortalContext

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    today = date.today()
    states = [OrderState.CLOSED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.SHIPPED,
              OrderState.RECEIVED, OrderState.CONFIRMED, OrderState.AWAITING_RESPONSE]  # fmt: skip
    orders = []
    for n in range(42):
        order = make_order(session, tenant, supplier, order_date=today - timedelta(days=(n * 7) % 11))
        order.state = states[n % len(states)]
        order.due_date = None if n % 9 == 0 else today + timedelta(days=(n * 5) % 13 - 6)
        orders.append(order)
    foreign = make_order(session, make_tenant(session), supplier)
    foreign.state = OrderState.CLOSED
    session.flush()  # under the other tenant's context, which make_order set
    set_context(session, tenant_id=tenant.id)
    buyer = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.BUYER,
                          supplier_id=None, supplier_name=None)  # fmt: skip
    far = date.max

    expected_order = {
        "due": lambda o: (o.due_date or far, o.id),
        "-due": lambda o: (-(o.due_date or far).toordinal(), -o.id),
        "-date": lambda o: (-o.order_date.toordinal(), -o.id),
    }
    monkeypatch.setattr(queries, "PAGE_SIZE", 4)
    for tab in ("late", "shipped", "closed"):
        in_tab = [o for o in orders if o.state in queries.TAB_STATES[tab]]
        if tab == "late":
            in_tab = [o for o in in_tab if o.due_date is not None and o.due_date < today]
        assert len(in_tab) > 4  # more than a page
        for sort, key in expected_order.items():
            listed = []
            for number in range(1, 4):
                page = queries.inbox(session, buyer, queries.InboxFilters(tab=tab, sort=sort, page=number), today)
                listed += [row.id for row in page.rows]
            assert listed == [o.id for o in sorted(in_tab, key=key)][:12], (tab, sort)


def test_the_inbox_search_finds_a_number_prefix_or_a_product_code_exactly(session):
    """The search matches the beginning of an order number (``%`` and ``_`` as characters, any alphabet) or a
    line's product code, ours or the supplier's, exactly; for a buyer over the tenant, for a supplier over its
    own orders only."""
    from portal.orders import queries
    from portal.orders.models import PurchaseOrderLine
    from portal.web import PortalContext

    tenant = make_tenant(session)
    supplier, other = make_supplier(session, tenant), make_supplier(session, tenant)
    numbers = ["PO-1%A", "PO-1_B", "PO-10", "PO-2", "po-1x", "Ä-77", "ÄB-1"]
    orders = {n: make_order(session, tenant, supplier if n != "PO-10" else other, number=n) for n in numbers}
    set_context(session, tenant_id=tenant.id)
    coded = session.execute(select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == orders["PO-2"].id)).scalars()
    first = next(iter(coded))
    first.product_code, first.supplier_product_code = "BOLT-9", "ACME-BOLT-9"
    session.flush()

    def found(q: str, supplier_id: int | None = None) -> set[str]:
        context = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.BUYER,
                                supplier_id=supplier_id, supplier_name=None)  # fmt: skip
        page = queries.inbox(session, context, queries.InboxFilters(tab="all", q=q), date.today())
        return {row.number for row in page.rows}

    assert found("PO-1") == {"PO-1%A", "PO-1_B", "PO-10"}
    assert found("PO-1%") == {"PO-1%A"} and found("PO-1_") == {"PO-1_B"}
    assert found("Ä-7") == {"Ä-77"} and found("Ä") == {"Ä-77", "ÄB-1"}
    assert found("BOLT-9") == {"PO-2"} and found("ACME-BOLT-9") == {"PO-2"} and found("BOLT") == set()
    assert found("PO-1", supplier.id) == {"PO-1%A", "PO-1_B"}  # the other supplier's PO-10 is not theirs
    assert found("BOLT-9", other.id) == set()


def test_a_supplier_search_gives_the_same_orders_as_ids_as_a_subquery_or_none(session, monkeypatch):
    """The suppliers a search finds are looked up first and given as ids; beyond the cap, as a subquery; none
    found, no order. Each way lists the same orders."""
    from portal.orders import queries
    from portal.suppliers import services as supplier_services
    from portal.web import PortalContext

    tenant = make_tenant(session)
    acme, acme_two, bolt = (make_supplier(session, tenant, name) for name in ("Acme One", "Acme Two", "Bolt"))
    orders = {s.name: make_order(session, tenant, s).number for s in (acme, acme_two, bolt)}
    set_context(session, tenant_id=tenant.id)
    buyer = PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.BUYER,
                          supplier_id=None, supplier_name=None)  # fmt: skip

    def listed(search: str) -> set[str]:
        page = queries.inbox(session, buyer, queries.InboxFilters(tab="all", supplier_q=search), date.today())
        return {row.number for row in page.rows}

    assert listed("acme") == {orders["Acme One"], orders["Acme Two"]}
    assert listed("nobody by that name") == set()
    monkeypatch.setattr(supplier_services, "SEARCH_IDS_CAP", 1)  # two found: the subquery
    assert listed("acme") == {orders["Acme One"], orders["Acme Two"]}
    assert listed("bolt") == {orders["Bolt"]}


def test_only_a_suppliers_unfiltered_tab_counts_may_keep_a_generic_plan():
    """One supplier's unfiltered counts have one plan whatever its size; the page, and the counts of a search, a
    filter or a buyer's whole tenant, are planned for each run (how many orders match decides the plan)."""
    from portal.db import CUSTOM_PLAN
    from portal.orders import queries
    from portal.web import PortalContext

    def per_run(filters, supplier_id):  # type: ignore[no-untyped-def]
        context = PortalContext(membership_id=0, tenant_id=1, tenant_name="t", role=Role.BUYER,
                                supplier_id=supplier_id, supplier_name=None)  # fmt: skip
        pair = queries._inbox_statements(filters, context, queries._filter_conditions(filters, context))
        return [bool(statement.get_execution_options().get(CUSTOM_PLAN)) for statement in pair]

    assert per_run(queries.InboxFilters(tab="all"), 7) == [False, True]
    assert per_run(queries.InboxFilters(tab="late", sort="number"), 7) == [False, True]
    assert per_run(queries.InboxFilters(tab="all", q="PO-1"), 7) == [True, True]
    assert per_run(queries.InboxFilters(tab="late", warehouse_id=3), 7) == [True, True]
    assert per_run(queries.InboxFilters(tab="all"), None) == [True, True]


def test_the_answer_forms_delivery_rows_offer_the_request_then_keep_what_was_typed():
    from werkzeug.datastructures import MultiDict

    from portal.orders.forms import delivery_rows
    from portal.orders.models import PurchaseOrderLine

    line = PurchaseOrderLine(id=7, quantity=Decimal("90.000"), requested_date=date(2026, 5, 4))
    fresh = delivery_rows(line, MultiDict(), 10)
    assert fresh[0] == (1, "90", "2026-05-04", False)
    assert [hidden for *_, hidden in fresh] == [False, False, False] + [True] * 7
    assert all(quantity == day == "" for _, quantity, day, _ in fresh[1:])
    sent_back = MultiDict({"line-7-qty-1": "40", "line-7-date-1": "2026-05-01", "line-7-qty-5": "50",
                           "line-7-date-5": "bad date", "line-8-qty-2": "1"})  # fmt: skip
    rows = delivery_rows(line, sent_back, 10)
    assert rows[0] == (1, "40", "2026-05-01", False)
    assert rows[1] == (2, "", "", False)  # another line's field is not this line's
    assert rows[4] == (5, "50", "bad date", False)  # typed: shown even beyond the first three
    assert rows[5] == (6, "", "", True)


# A line's delivery inputs as they were written in Jinja: ``portal.orders.rows.delivery_inputs`` must make this.
_DELIVERY_INPUTS_IN_JINJA = (
    "{% set p = 'line-' ~ line_id %}{% for n, quantity, day, hidden in rows %}"
    '<tr{% if hidden %} class="more"{% endif %}><td>{{ n }}</td>'
    '<td><input name="{{ p }}-qty-{{ n }}" inputmode="decimal" aria-label="Delivery {{ n }} quantity" '
    'value="{{ quantity }}"></td>'
    '<td><input type="date" name="{{ p }}-date-{{ n }}" aria-label="Delivery {{ n }} date" value="{{ day }}"></td>'
    "</tr>{% if not loop.last %}\n{% endif %}{% endfor %}"
)


def test_delivery_inputs_are_the_jinja_inputs_with_what_was_typed_escaped(app):
    from flask import render_template_string
    from werkzeug.datastructures import MultiDict

    from portal.orders.forms import delivery_rows
    from portal.orders.models import PurchaseOrderLine
    from portal.orders.rows import delivery_inputs

    line = PurchaseOrderLine(id=7, quantity=Decimal("90.000"), requested_date=date(2026, 5, 4))
    typed = "\"><script>alert(1)</script> & 'q'"
    sent_back = MultiDict({"line-7-qty-1": typed, "line-7-date-1": typed, "line-7-qty-5": "50"})
    with app.test_request_context("/"):
        for values in (MultiDict(), sent_back):
            rows = delivery_rows(line, values, 10)
            made = delivery_inputs(line.id, rows)
            assert str(made) == render_template_string(_DELIVERY_INPUTS_IN_JINJA, line_id=line.id, rows=rows)
    assert "<script>" not in made and made.count("&#34;&gt;&lt;script&gt;") == 2
    assert made.count('class="more"') == 6  # rows 2-3 shown, 5 typed, the other six hidden until asked for


def test_the_supplier_list_searches_code_and_name_as_the_inbox_does(trade):
    """The supplier list and the inbox's supplier filter share one search: any part of the code or the name,
    whatever its case, with % and _ as plain characters."""
    session, tenant, order, _, _, buyer = trade
    make_supplier(session, tenant, "Globex 100% Parts")
    code = session.get(Supplier, order.supplier_id).code

    def found(query: str) -> set[str]:
        page = buyer.get(f"/suppliers?{query}")
        assert page.status_code == 200
        return {name for name in ("Acme Orders", "Globex 100% Parts") if name in page.text}

    assert found("") == {"Acme Orders", "Globex 100% Parts"}
    assert found("q=acme") == found(f"q={code.lower()}") == {"Acme Orders"}
    assert found("q=100%25") == found("q=%25") == {"Globex 100% Parts"}
    assert found("q=_") == set()


def test_the_inbox_filters_by_buyer_among_the_tenants_buyers(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    ben, nora = make_member(session, tenant, Role.BUYER), make_member(session, tenant, Role.TENANT_ADMIN)
    make_member(session, tenant, Role.VIEWER)  # places no orders: not a choice
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    bens = make_order(session, tenant, supplier, [("5", "1", 5)])
    noras = make_order(session, tenant, supplier, [("5", "1", 5)])
    bens.buyer_id, noras.buyer_id = ben.user.id, nora.user.id
    session.flush()
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    page = client.get("/orders?tab=all").text
    select_html = page.split('name="buyer"')[1].split("</select>")[0]
    choices = re.findall(r'<option value="(\d+)"[^>]*>[^<]*</option>', select_html)
    assert sorted(map(int, choices)) == sorted([ben.user.id, nora.user.id])
    filtered = client.get(f"/orders?tab=all&buyer={ben.user.id}").text
    assert bens.number in filtered and noras.number not in filtered
    assert f'<option value="{ben.user.id}" selected>' in filtered
    assert "(you)" not in page  # the supplier is none of them
    # A buyer finds themselves marked in the list.
    staff = PortalClient(app.test_client())
    staff.sign_in(ben.email, PASSWORD, ben.secret)
    assert f'<option value="{ben.user.id}">{ben.user.name} (you)</option>' in staff.get("/orders?tab=all").text


def test_the_order_page_names_the_buying_company_and_the_buyer_to_contact(trade, session):
    """A supplier sees which of the customer's companies the order binds and whom to write to about it (a
    mailto link with the order's number); an order that names no buyer says so. Markup in a name is text."""
    from portal.tenancy.models import Company

    _, tenant, order, _, seller, buyer_client = trade
    company = session.get(Company, order.company_id)
    page = seller.get(f"/orders/{order.id}").text
    assert f"{tenant.name} · {company.name}" in page
    assert re.search(r'data-testid="order-buyer">—</dd>', page)

    ordering = make_member(session, tenant, Role.BUYER)
    ordering.user.name = "Ben <b>Carter</b>"
    order.buyer_id = ordering.user.id
    session.flush()
    for client in (seller, buyer_client):
        page = client.get(f"/orders/{order.id}").text
        link = re.search(r'data-testid="order-buyer"><a href="([^"]+)">([^<]*)</a>', page)
        assert link, "the buyer should be a mailto link"
        assert link.group(1) == f"mailto:{ordering.email}?subject=Purchase%20order%20{order.number}"
        assert link.group(2) == "Ben &lt;b&gt;Carter&lt;/b&gt;"

    ordering.user.name = ""  # a buyer who gave no name is shown by their address
    session.flush()
    assert f">{ordering.email}</a>" in seller.get(f"/orders/{order.id}").text


def test_an_order_downloads_as_a_pdf_for_its_supplier_and_its_buyers_only(trade, app, session):
    """The order to file or print: parties, lines with their promises, total. Markup in a name is text and
    loads nothing; another supplier of the same customer gets 404."""
    import io

    from pypdf import PdfReader

    from portal.tenancy.models import Company

    _, tenant, order, (first, _, third), seller, buyer = trade
    first.product_name = 'Bolts <img src="/x"><b>M8</b>'
    session.flush()
    assert post_form(seller, f"/orders/{order.id}", f"/orders/{order.id}/accept-all", {}).status_code == 302
    page = f"/orders/{order.id}"
    assert post_form(buyer, page, f"{page}/lines/{third.id}/cancel", {"reason": "not needed"}).status_code == 302
    # The total leaves the cancelled line out, and so does its row: 100 x 2.50 + 40 x 10.00.
    session.refresh(order)
    assert order.total_value == Decimal("650")
    assert f'href="/orders/{order.id}.pdf"' in seller.get(f"/orders/{order.id}").text
    for client in (seller, buyer):
        pdf = client.get(f"/orders/{order.id}.pdf")
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
        assert f'filename="purchase-order-{order.number}.pdf"' in pdf.headers["Content-Disposition"]
        text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
        assert f"Purchase order {order.number}" in text and tenant.name in text
        assert session.get(Company, order.company_id).name in text
        assert 'Bolts<imgsrc="/x"><b>M8</b>' in re.sub(r"\s+", "", text)  # shown as text (wrapped), never loaded
        assert f"100 on {first.requested_date}" in " ".join(text.split())  # the promise accepted
        assert f"Total {order.total_value:,.2f} {order.currency}" in text
        assert re.search(r"12 \S+ 4\.00 — ", " ".join(text.split())), "the cancelled line's amount is not counted"

    other = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant))
    stranger = PortalClient(app.test_client())
    stranger.sign_in(other.email, PASSWORD, other.secret)
    assert stranger.get(f"/orders/{order.id}.pdf").status_code == 404


def bars_of(pdf: bytes) -> str:
    """The barcode at the top right of a PDF's first page, read back from its pixels as Code 128 modules
    ('1' a bar, '0' a space): a row through the bars, its run lengths divided by the module's width."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    image = document[0].render(scale=8).to_pil().convert("L")
    width, height = image.size
    pixels = image.load()
    # The row with the most dark runs in the top fifth of the page's right half is one through the bars.
    best: list[tuple[bool, int]] = []
    for y in range(0, height // 5, 4):
        runs: list[tuple[bool, int]] = []
        for x in range(width // 2, width):
            dark = pixels[x, y] < 128
            if runs and runs[-1][0] == dark:
                runs[-1] = (dark, runs[-1][1] + 1)
            else:
                runs.append((dark, 1))
        if sum(dark for dark, _ in runs) > sum(dark for dark, _ in best):
            best = runs
    inner = best[1:-1] if not best[0][0] else best  # leave out the white margins
    if inner and not inner[-1][0]:
        inner = inner[:-1]
    # A module is a few pixels, give or take one: start from the narrowest run, then refine over the whole width.
    total, module = sum(length for _, length in inner), float(min(length for _, length in inner))
    for _ in range(5):
        module = total / sum(max(1, round(length / module)) for _, length in inner)
    return "".join(("1" if dark else "0") * max(1, round(length / module)) for dark, length in inner)


def test_a_ship_notice_prints_a_packing_slip_whose_barcode_finds_its_order(trade, app, session):
    """The packing slip lists what the shipment holds, for the supplier and the buyers; its Code 128 barcode
    carries the notice's number, which the orders search finds. A cancelled notice says so. Another supplier of
    the same customer, and a notice of another order, get 404."""
    import io

    from barcode import Code128
    from pypdf import PdfReader

    _, tenant, order, (first, second, _third), seller, buyer = trade
    page = f"/orders/{order.id}"
    assert post_form(seller, page, f"{page}/accept-all", {}).status_code == 302
    ship_page = f"{page}/ship"
    arrives = (date.today() + timedelta(days=2)).isoformat()
    shipment = {"ship_date": date.today().isoformat(), "expected_arrival": arrives, "carrier": "DHL Freight",
                "tracking_number": "JD0146000012345", "packing_slip": "LS-88120"}  # fmt: skip
    sent = post_form(seller, ship_page, ship_page, {f"ship-{first.id}": "60", f"ship-{second.id}": "40", **shipment})
    assert sent.status_code == 302
    notice = session.execute(select(ShipNotice).where(ShipNotice.order_id == order.id)).scalar_one()
    slip = f"{page}/ship-notices/{notice.id}.pdf"
    assert f'href="{slip}"' in buyer.get(page).text and f'href="{slip}"' in seller.get(page).text
    for client in (seller, buyer):
        pdf = client.get(slip)
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
        assert f'filename="packing-slip-{notice.number}.pdf"' in pdf.headers["Content-Disposition"]
        text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages).split())
        assert f"Ship notice {notice.number} · purchase order {order.number}" in text
        for field in ("DHL Freight", "JD0146000012345", "LS-88120", tenant.name):
            assert field in text
        assert f"1 {first.product_code} · {first.product_name}" in text and "100 pc 60 pc" in text
        assert f"2 {second.product_code} · {second.product_name}" in text and "40 pc 40 pc" in text
        assert "3 " + _third.product_code not in text  # not in this shipment
        assert "2 lines." in text and "Cancelled" not in text
    # The bars printed are the notice number's, as a scanner reads them.
    assert bars_of(pdf.data) == "".join(Code128(notice.number).build())
    # Scanned into the orders search, the number finds the order, for the buyer and the supplier.
    for client in (buyer, seller):
        found = client.get(f"/orders?tab=all&q={notice.number}").text
        assert f'href="/orders/{order.id}"' in found
    assert f'href="/orders/{order.id}"' not in buyer.get(f"/orders?tab=all&q={notice.number}9").text

    cancel = f"{page}/ship-notices/{notice.id}/cancel"
    assert post_form(seller, page, cancel, {}).status_code == 302
    cancelled = " ".join(PdfReader(io.BytesIO(seller.get(slip).data)).pages[0].extract_text().split())
    assert "Cancelled: do not ship against this notice" in cancelled

    other = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant))
    stranger = PortalClient(app.test_client())
    stranger.sign_in(other.email, PASSWORD, other.secret)
    assert stranger.get(slip).status_code == 404
    another = make_order(session, tenant, session.get(Supplier, order.supplier_id), [("1", "1", 5)])
    assert seller.get(f"/orders/{another.id}/ship-notices/{notice.id}.pdf").status_code == 404


def test_a_buyer_revises_a_confirmed_line_and_the_supplier_is_asked_again(trade):
    session, tenant, order, (first, _second, _third), seller, buyer = trade
    page = f"/orders/{order.id}"
    post_form(seller, page, f"/orders/{order.id}/accept-all", {})
    action = f"/orders/{order.id}/lines/{first.id}/revise"
    later = (first.requested_date + timedelta(days=5)).isoformat()
    bad = post_form(buyer, page, action, {"quantity": "0", "requested_date": later, "unit_price": "2.50"})
    assert bad.status_code == 422 and "Enter a quantity above zero." in bad.text
    same = post_form(buyer, page, action, {"quantity": "100", "requested_date": str(first.requested_date),
                                           "unit_price": "2.50"})  # fmt: skip
    assert same.status_code == 422 and "These are the line&#39;s terms already" in same.text
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    assert session.get(PurchaseOrder, order.id).state == OrderState.CONFIRMED  # refused: nothing changed
    done = post_form(buyer, page, action, {"quantity": "90", "requested_date": later, "unit_price": "2.50",
                                           "comment": "a smaller run"})  # fmt: skip
    assert done.status_code == 302
    session.expire_all()
    line = session.get(type(first), first.id)
    assert (line.quantity, str(line.requested_date), line.state) == (Decimal("90"), later, LineState.AWAITING_RESPONSE)
    html = seller.get(page).text
    assert f'data-testid="revised-{first.id}"' in html and "a smaller run" in html
    assert f'id="answer-{first.id}"' in html  # the answer form asks for line 1 again
    assert "by the buyer: the supplier answers again" in buyer.get(page).text  # in the history
    # The supplier accepts the new terms: its promises start afresh (the first promise is the new one).
    assert post_form(seller, page, f"/orders/{order.id}/accept-all", {}).status_code == 302
    row = re.search(rf'<tr id="line-{first.id}">(.*?)</tr>', buyer.get(page).text, re.S).group(1)
    assert row.count(later) == 3  # requested, first promise and current promise
    # A supplier cannot revise: the route is the buyer's.
    assert post_form(seller, page, action, {"quantity": "80", "requested_date": later,
                                            "unit_price": "2.50"}).status_code == 403  # fmt: skip


def test_a_buyer_revises_a_line_part_of_which_has_shipped(trade):
    """The shipped part stays committed; the buyer may only order more than it; the supplier answers the whole
    line again (a rejection is not offered) and can ship the rest."""
    session, tenant, order, (first, _second, _third), seller, buyer = trade
    page = f"/orders/{order.id}"
    post_form(seller, page, f"/orders/{order.id}/accept-all", {})
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    svc.create_ship_notice(
        session, order=session.get(PurchaseOrder, order.id), quantities={first.id: Decimal("30")},
        shipment=svc.ShipmentInput(date.today(), date.today()), expected_version=None, actor=svc.Actor(None, "s", ""),
    )  # fmt: skip
    session.flush()
    assert "30 pc have shipped or arrived already" in buyer.get(page).text
    action = f"/orders/{order.id}/lines/{first.id}/revise"
    later = (first.requested_date + timedelta(days=5)).isoformat()
    too_few = post_form(buyer, page, action, {"quantity": "30", "requested_date": later, "unit_price": "2.50"})
    assert too_few.status_code == 422 and "order more than that, or cancel the rest of the line" in too_few.text
    done = post_form(buyer, page, action, {"quantity": "160", "requested_date": later, "unit_price": "2.50"})
    assert done.status_code == 302
    html = seller.get(page).text
    assert f'data-testid="gone-{first.id}"' in html and f'name="line-{first.id}-action" value="reject"' not in html
    assert post_form(seller, page, f"/orders/{order.id}/accept-all", {}).status_code == 302
    session.expire_all()
    line = session.get(type(first), first.id)
    assert (line.quantity, line.shipped_quantity, line.state) == (Decimal("160"), Decimal("30"),
                                                                   LineState.PARTIALLY_SHIPPED)  # fmt: skip
    assert svc.committed_quantity(session, line) == Decimal("160")


def test_a_change_from_the_erp_is_shown_to_the_buyer_with_its_two_choices(trade):
    from portal.erp.models import ErpLineSync

    session, tenant, order, (first, _second, _third), seller, buyer = trade
    page = f"/orders/{order.id}"
    post_form(seller, page, f"/orders/{order.id}/accept-all", {})
    set_context(session, tenant_id=tenant.id)
    placed = date.today() - timedelta(days=10)
    session.execute(update(PurchaseOrder).where(PurchaseOrder.id == order.id).values(erp_ref="77", order_date=placed))
    session.execute(update(type(first)).where(type(first).id == first.id).values(erp_ref="701"))
    requested = first.requested_date.isoformat()
    session.add(
        ErpLineSync(tenant_id=tenant.id, line_id=first.id, order_id=order.id, erp_terms=f"100|{requested}|2.5",
                    revised_terms=f"70|{requested}|2.75", revised_write_date="2026-11-29 08:00:00")
    )  # fmt: skip
    session.flush()
    queued = buyer.get("/orders/queue").text
    assert f'href="/orders/{order.id}#revision-{first.id}"' in queued  # the buyers' queue of decisions lists it
    assert f'70 on <span class="nowrap">{requested}</span><br><small>at 2.75</small>' in queued
    html = buyer.get(page).text
    assert 'data-testid="erp-revision-1"' in html and "Changed in the ERP after the supplier answered" in html
    assert 'name="quantity" inputmode="decimal" value="70"' in html
    assert "erp-revision" not in seller.get(page).text  # the supplier's people do not decide it
    # No ERP connection to write the commitment back to: said, and the change still waits for a decision.
    kept = post_form(buyer, page, f"/orders/{order.id}/lines/{first.id}/keep-commitment", {})
    assert kept.status_code == 422 and "The ERP connection is switched off" in kept.text
    assert 'data-testid="erp-revision-1"' in buyer.get(page).text
    sent = post_form(buyer, page, f"/orders/{order.id}/lines/{first.id}/revise",
                     {"quantity": "70", "requested_date": requested, "unit_price": "1.00"})  # fmt: skip
    assert sent.status_code == 302
    session.expire_all()
    line = session.get(type(first), first.id)
    # The ERP's price, whatever was posted: the ERP line's price is the buyer's there.
    assert (line.quantity, line.unit_price, line.state) == (Decimal("70"), Decimal("2.75"), LineState.AWAITING_RESPONSE)
    assert "erp-revision" not in buyer.get(page).text
    queued = buyer.get("/orders/queue").text
    assert "#revision-" not in queued  # decided: it leaves the queue, and the order waits for the supplier again
    # Placed ten days ago, but asked again today: it has waited 0 days.
    assert re.search(rf'{order.number}</a></td><td>Acme Orders</td><td class="nowrap">{placed}</td>\s*'
                     r'<td class="nowrap">0 days</td>', queued)  # fmt: skip
