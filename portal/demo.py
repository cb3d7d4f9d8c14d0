"""Demo data: a regional distributor and a second one that shares a supplier.

Northwind Distribution runs 3 companies, 5 warehouses and 25 suppliers, with one
user for each role. Harbor Supply is a second distributor; Acme Fasteners
supplies both, so its administrator sees the customer switcher. Demo users have
known passwords and TOTP secrets (``is_demo``), printed by ``flask demo``.
Running it again changes nothing and prints the same sign-ins.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import audit
from portal.auth import mfa
from portal.auth.models import Membership, User
from portal.auth.passwords import hash_password
from portal.auth.permissions import Role
from portal.auth.services import Actor
from portal.db import set_context, utcnow
from portal.documents.storage import LocalStorage
from portal.suppliers.models import Supplier
from portal.tenancy.models import Company, Tenant, Warehouse

DEMO_PASSWORD = "northwind-demo-portal"  # noqa: S105 (demo mode only, printed by `flask demo`)

COMPANIES = [
    ("NWD", "Northwind Distribution Ltd", [("LDS", "Leeds DC", "Leeds"), ("BHM", "Birmingham DC", "Birmingham")]),
    (
        "NWI",
        "Northwind Industrial Supply Ltd",
        [("MAN", "Manchester Hub", "Manchester"), ("GLA", "Glasgow Depot", "Glasgow")],
    ),
    ("NWR", "Northwind Retail Services Ltd", [("BRS", "Bristol Cross-dock", "Bristol")]),
]

SUPPLIERS = [
    ("ACME", "Acme Fasteners", "Fasteners"),
    ("BOLT", "Boltwright Industrial", "Fasteners"),
    ("CAST", "Castleford Castings", "Metal parts"),
    ("DELT", "Delta Hydraulics", "Hydraulics"),
    ("EAST", "Eastern Bearings", "Bearings"),
    ("FLOW", "Flowline Valves", "Valves"),
    ("GRIP", "Grip Safety Wear", "Safety"),
    ("HALO", "Halo Lighting", "Electrical"),
    ("IRON", "Ironbridge Steel", "Metal parts"),
    ("JETP", "Jetpack Packaging", "Packaging"),
    ("KILN", "Kiln Ceramics", "Ceramics"),
    ("LUMA", "Luma Cables", "Electrical"),
    ("MERC", "Mercia Pumps", "Hydraulics"),
    ("NORD", "Nordic Seals", "Seals"),
    ("OAKT", "Oak Tree Pallets", "Packaging"),
    ("PENN", "Pennine Plastics", "Plastics"),
    ("QUAY", "Quayside Chemicals", "Chemicals"),
    ("ROTA", "Rotary Motors", "Electrical"),
    ("SOLV", "Solvent Solutions", "Chemicals"),
    ("TRNT", "Trent Tools", "Tools"),
    ("UNIT", "Unity Abrasives", "Tools"),
    ("VALE", "Vale Adhesives", "Chemicals"),
    ("WELD", "Weldcraft Consumables", "Welding"),
    ("XACT", "Xact Gauges", "Instruments"),
    ("YORK", "York Labels", "Packaging"),
]

HARBOR_SUPPLIERS = [
    ("ACME", "Acme Fasteners", "Fasteners"),
    ("BAYW", "Bayside Workwear", "Safety"),
    ("CRAN", "Crane Lifting Gear", "Lifting"),
]

# (e-mail, role, tenant slug, supplier code)
USERS = [
    ("admin@northwind.example", Role.TENANT_ADMIN, "northwind", None),
    ("buyer@northwind.example", Role.BUYER, "northwind", None),
    ("compliance@northwind.example", Role.COMPLIANCE_OFFICER, "northwind", None),
    ("viewer@northwind.example", Role.VIEWER, "northwind", None),
    ("admin@harbor.example", Role.TENANT_ADMIN, "harbor", None),
    ("anna@acme.example", Role.SUPPLIER_ADMIN, "northwind", "ACME"),
    ("anna@acme.example", Role.SUPPLIER_ADMIN, "harbor", "ACME"),
    ("sam@acme.example", Role.SUPPLIER_USER, "northwind", "ACME"),
    ("orders@boltwright.example", Role.SUPPLIER_ADMIN, "northwind", "BOLT"),
]


# What the header and the audit trail call each demo person.
NAMES = {
    "admin@northwind.example": "Nora Lindqvist",
    "buyer@northwind.example": "Ben Carter",
    "compliance@northwind.example": "Chloe Martin",
    "viewer@northwind.example": "Victor Hale",
    "admin@harbor.example": "Hannah Reid",
    "anna@acme.example": "Anna Kowalski",
    "sam@acme.example": "Sam Patel",
    "orders@boltwright.example": "Omar Haddad",
}


def demo_secret(email: str) -> str:
    """A stable TOTP secret per demo address, so re-seeding prints the same one."""
    return base64.b32encode(hashlib.sha256(f"demo-totp:{email}".encode()).digest()[:20]).decode()


def _ensure_tenant(session: Session, slug: str, name: str) -> tuple[Tenant, bool]:
    tenant = session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is not None:
        return tenant, False
    tenant = Tenant(slug=slug, name=name)
    session.add(tenant)
    session.flush()
    return tenant, True


# The supplier administrators the demo signs in as, by supplier code: they upload their certificates and answer
# their orders themselves.
SUPPLIER_PEOPLE = {"ACME": "anna@acme.example", "BOLT": "orders@boltwright.example"}


def seed_demo(session: Session, storage: LocalStorage | None = None) -> list[tuple[str, str, str]]:
    """Seed both distributors (once; a second run adds nothing) and return the sign-ins to print. With
    ``storage``, Northwind's suppliers also get certificates: approved, expiring, waiting for review, rejected."""
    tenants: dict[str, Tenant] = {}
    suppliers: dict[tuple[str, str], int] = {}
    for slug, name, supplier_rows, companies in (
        ("northwind", "Northwind Distribution", SUPPLIERS, COMPANIES),
        (
            "harbor",
            "Harbor Supply Co",
            HARBOR_SUPPLIERS,
            [("HSC", "Harbor Supply Co", [("POR", "Portsmouth", "Portsmouth")])],
        ),
    ):
        tenant, created = _ensure_tenant(session, slug, name)
        tenants[slug] = tenant
        set_context(session, tenant_id=tenant.id)
        if created:
            audit.record(
                session, "tenant.created", tenant_id=tenant.id, actor="demo", object_type="tenant", object_id=tenant.id
            )
            for code, cname, warehouses in companies:
                company = Company(tenant_id=tenant.id, code=code, name=cname)
                session.add(company)
                session.flush()
                session.add_all(
                    Warehouse(tenant_id=tenant.id, company_id=company.id, code=wcode, name=wname, city=city)
                    for wcode, wname, city in warehouses
                )
            session.add_all(
                Supplier(tenant_id=tenant.id, code=code, name=sname, category=cat, erp_ref=f"res.partner,{1000 + i}")
                for i, (code, sname, cat) in enumerate(supplier_rows)
            )
            session.flush()
        for supplier in session.execute(select(Supplier).where(Supplier.tenant_id == tenant.id)).scalars():
            suppliers[(slug, supplier.code)] = supplier.id

    printed: list[tuple[str, str, str]] = []
    password_hash = hash_password(DEMO_PASSWORD)
    for email, role, slug, supplier_code in USERS:
        tenant = tenants[slug]
        set_context(session, tenant_id=tenant.id)
        user = session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if user is None:
            user = User(
                email=email,
                name=NAMES[email],
                password_hash=password_hash,
                password_changed_at=utcnow(),
                totp_secret=demo_secret(email),
                mfa_enabled_at=utcnow(),
                is_demo=True,
            )
            session.add(user)
            session.flush()
            mfa.regenerate_recovery_codes(session, user)
        supplier_id = suppliers[(slug, supplier_code)] if supplier_code else None
        exists = session.execute(
            select(Membership).where(
                Membership.tenant_id == tenant.id,
                Membership.user_id == user.id,
                Membership.supplier_id.is_(None) if supplier_id is None else Membership.supplier_id == supplier_id,
            )
        ).scalar_one_or_none()
        if exists is None:
            session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=role, supplier_id=supplier_id))
            session.flush()
            audit.record(
                session,
                "membership.created",
                tenant_id=tenant.id,
                actor="demo",
                object_type="user",
                object_id=user.id,
                after={"email": email, "role": role.value},
            )
        where = f"{tenant.name}" + (f" / supplier {supplier_code}" if supplier_code else "")
        printed.append((email, f"{role.label} at {where}", user.totp_secret or ""))
    for slug in ("northwind", "harbor"):
        tenant = tenants[slug]
        set_context(session, tenant_id=tenant.id)
        buyer = session.execute(
            select(User).where(
                User.email == ("buyer@northwind.example" if slug == "northwind" else "admin@harbor.example")
            )
        ).scalar_one()
        seed_orders(session, tenant, buyer.id)
        if seed_document_requirements(session, tenant) and storage is not None and slug == "northwind":
            seed_documents(session, tenant, storage)
            _attach_delivery_plan(session, tenant, storage)
        # Open the alerts of late, at-risk, partial and unconfirmed lines now rather than at the
        # detection job's first run (idempotent: a second seed opens nothing new).
        from portal.orders.alerts import detect

        session.flush()
        detect(session, tenant_id=tenant.id)
        # Written under this tenant's context: flushed later, under the next tenant's, PostgreSQL's row-level
        # security refuses them.
        session.flush()
    set_context(session, tenant_id=None)
    return printed


def seed_document_requirements(session: Session, tenant: Tenant) -> bool:
    """The certificates a distributor typically asks for (once); suppliers see them as missing. Whether they
    were added now."""
    from portal.documents.models import DocumentType, Requirement, RequirementScope

    if session.execute(select(DocumentType.id).where(DocumentType.tenant_id == tenant.id).limit(1)).first():
        return False
    for code, name, scope, category, months in (
        ("ISO9001", "ISO 9001 certificate", RequirementScope.ALL, "", None),
        ("INSURANCE", "Liability insurance certificate", RequirementScope.ALL, "", 12),
        ("SDS", "Safety data sheet", RequirementScope.CATEGORY, "Chemicals", 36),
    ):
        doc_type = DocumentType(tenant_id=tenant.id, code=code, name=name)
        session.add(doc_type)
        session.flush()
        session.add(
            Requirement(
                tenant_id=tenant.id,
                document_type_id=doc_type.id,
                scope=scope,
                category=category,
                validity_months=months,
                reminder_days=[60, 30, 7],
            )
        )
    session.flush()
    return True


def certificate_pdf(lines: Sequence[str]) -> bytes:
    """A one-page A4 PDF with ``lines`` of text (the first as a title): what a scanned certificate would be, built
    byte by byte (WeasyPrint takes a tenth of a second per file; the demo makes a few dozen)."""

    def text(value: str) -> str:
        return value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    shown = [f"BT /F1 20 Tf 72 760 Td ({text(lines[0])}) Tj ET"]
    shown += [f"BT /F1 12 Tf 72 {720 - 22 * n} Td ({text(line)}) Tj ET" for n, line in enumerate(lines[1:])]
    content = "\n".join(shown).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def seed_documents(session: Session, tenant: Tenant, storage: LocalStorage) -> None:
    """Certificates as a compliance team finds them on an ordinary day: most of the first suppliers' approved, one
    expiring within a month and one within two, three waiting for review, one rejected with its reason, and the
    other suppliers' still missing. Uploaded by the supplier's administrator where it has one in the demo, reviewed
    by the compliance officer, through the real services."""
    from portal.documents import services as documents
    from portal.documents.models import DocumentType, Requirement

    today = date.today()
    types = {t.code: t for t in session.execute(select(DocumentType).where(DocumentType.tenant_id == tenant.id))
             .scalars()}  # fmt: skip
    suppliers = (
        session.execute(select(Supplier).where(Supplier.tenant_id == tenant.id).order_by(Supplier.id)).scalars().all()
    )
    people = {user.email: user.id for user in session.execute(select(User).where(User.email.in_(
        [*SUPPLIER_PEOPLE.values(), "compliance@northwind.example"]))).scalars()}  # fmt: skip
    reviewer = Actor(people["compliance@northwind.example"], "compliance@northwind.example", "")
    # (supplier index, type code, days until expiry, decision: approve / reject / None for waiting)
    plan: list[tuple[int, str, int, str | None]] = [
        (0, "ISO9001", 21, "approve"),
        (0, "INSURANCE", 355, None),
        (1, "ISO9001", 400, "approve"),
        (1, "INSURANCE", 340, "reject"),
        (2, "ISO9001", 520, "approve"),
        (2, "INSURANCE", 50, "approve"),
    ]
    plan += [(index, "ISO9001", 300 + 40 * index, "approve") for index in range(3, 8)]
    plan += [(index, "INSURANCE", 120 + 20 * index, "approve") for index in range(3, 8)]
    plan += [(8, "ISO9001", 700, None), (9, "ISO9001", 650, None)]
    chemicals = next((i for i, supplier in enumerate(suppliers) if supplier.category == "Chemicals"), None)
    if chemicals is not None:
        plan.append((chemicals, "SDS", 900, "approve"))
    for index, code, days_left, decision in plan:
        supplier, doc_type = suppliers[index], types[code]
        expiry = today + timedelta(days=days_left)
        issued = expiry - timedelta(days=365 if code == "INSURANCE" else 3 * 365)
        number = f"{code}-{supplier.code}-{issued:%Y}-{index + 101}"
        uploader_email = SUPPLIER_PEOPLE.get(supplier.code)
        uploader = Actor(people.get(uploader_email or ""), uploader_email or supplier.name, "")
        data = certificate_pdf([doc_type.name, supplier.name, f"Certificate number {number}",
                                f"Issued {issued:%d %B %Y}, valid until {expiry:%d %B %Y}",
                                "Issued by Demo Certification Body Ltd"])  # fmt: skip
        document = documents.upload(
            session, storage, tenant_id=tenant.id, supplier_id=supplier.id, actor=uploader,
            data=documents.UploadInput(document_type_id=doc_type.id, title=f"{doc_type.name} {issued:%Y}",
                                       issuer="Demo Certification Body Ltd", certificate_number=number,
                                       issue_date=issued, expiry_date=expiry, filename=f"{number}.pdf", data=data),
        )  # fmt: skip
        if decision is not None:
            comment = "" if decision == "approve" else "Made out to another company: upload your own certificate."
            documents.review(session, document=document, decision=decision, comment=comment, valid_until=expiry,
                             actor=reviewer)  # fmt: skip
        # Uploaded when it was issued (the waiting ones ten days ago): the scorecards' document compliance of the
        # closed months then reads the certificates held in those months.
        document.created_at = datetime.combine(issued if decision else today - timedelta(days=10), time(10), tzinfo=UTC)
    # The requirements were set a year ago, as a distributor's would have been.
    for requirement in session.execute(select(Requirement).where(Requirement.tenant_id == tenant.id)).scalars():
        requirement.created_at = datetime.combine(today - timedelta(days=365), time(9), tzinfo=UTC)
    session.flush()


PRODUCTS = [
    ("M8-40-ZN", "Hex bolt M8x40 zinc", "2.40"),
    ("M10-60-A2", "Hex bolt M10x60 A2", "0.95"),
    ("WS-8-ZN", "Washer 8 mm zinc", "0.04"),
    ("NUT-M8", "Hex nut M8", "0.06"),
    ("BRG-6204", "Ball bearing 6204", "3.80"),
    ("VLV-25", "Ball valve 1 inch", "14.50"),
    ("CBL-3G15", "Cable 3G1.5 per m", "0.72"),
    ("GLV-L", "Work gloves L", "1.90"),
]


def seed_orders(session: Session, tenant: Tenant, buyer_id: int) -> None:
    """A few dozen orders in every state, answered through the real services (once)."""
    from decimal import Decimal

    from portal.orders import services as svc
    from portal.orders.models import PurchaseOrder, PurchaseOrderLine, TolerancePolicy

    if session.execute(select(PurchaseOrder.id).where(PurchaseOrder.tenant_id == tenant.id).limit(1)).first():
        return
    session.add(
        TolerancePolicy(
            tenant_id=tenant.id,
            supplier_id=None,
            quantity_under_pct=Decimal("5"),
            quantity_over_pct=Decimal("5"),
            days_earlier=3,
            days_later=2,
            price_pct=Decimal("0"),
        )
    )
    warehouses = (
        session.execute(select(Warehouse).where(Warehouse.tenant_id == tenant.id).order_by(Warehouse.id))
        .scalars()
        .all()
    )
    suppliers = (
        session.execute(select(Supplier).where(Supplier.tenant_id == tenant.id).order_by(Supplier.id)).scalars().all()
    )
    buyer, answering = _order_actors(session, buyer_id)
    today = date.today()
    number = 0
    for s_index, supplier in enumerate(suppliers[:8]):
        for o_index in range(4 if supplier.code == "ACME" else 2):
            number += 1
            warehouse = warehouses[(s_index + o_index) % len(warehouses)]
            ordered = today - timedelta(days=(number * 3) % 20)
            order = PurchaseOrder(
                tenant_id=tenant.id,
                company_id=warehouse.company_id,
                warehouse_id=warehouse.id,
                supplier_id=supplier.id,
                buyer_id=buyer_id,
                number=f"{tenant.slug[:2].upper()}-PO{4500 + number}",
                currency="EUR",
                order_date=ordered,
            )
            session.add(order)
            session.flush()
            total = Decimal("0")
            for position in range(1, 2 + (number % 4)):
                code, name, price = PRODUCTS[(number + position) % len(PRODUCTS)]
                quantity = Decimal(50 * position + 10 * (number % 5))
                session.add(
                    PurchaseOrderLine(
                        tenant_id=tenant.id,
                        order_id=order.id,
                        supplier_id=supplier.id,
                        position=position,
                        product_code=code,
                        product_name=name,
                        quantity=quantity,
                        unit="pc",
                        unit_price=Decimal(price),
                        requested_date=ordered + timedelta(days=7 + 5 * position),
                    )
                )
                total += quantity * Decimal(price)
            order.total_value = total
            session.flush()
            lines = svc.order_lines(session, order)
            order.due_date = min(line.requested_date for line in lines)
            stage = number % 4
            if stage >= 1:  # answered: one line late outside tolerance goes to the buyer
                answers = [svc.LineAnswer(lines[0].id, "accept")] + [
                    svc.LineAnswer(
                        line.id,
                        "change",
                        (svc.Delivery(line.quantity, line.requested_date + timedelta(days=6 if stage == 1 else 1)),),
                    )
                    for line in lines[1:]
                ]
                svc.respond(session, order=order, answers=answers, expected_version=None,
                            actor=answering(supplier))  # fmt: skip
            if number == 5:  # a change order: the buyer cut a line the supplier had accepted; it is asked again
                svc.revise_line(
                    session, order=order, line=lines[0],
                    terms=svc.LineTerms(lines[0].quantity - 10, lines[0].requested_date, lines[0].unit_price),
                    comment="Our customer reduced its order.", expected_version=None, actor=buyer,
                )  # fmt: skip
            # Placed that morning and answered some hours to a few days later (not in the second the demo was
            # seeded: the scorecards' time to respond and acknowledgement rate read those times).
            order.created_at = datetime.combine(ordered, time(8), tzinfo=UTC)
            if order.responded_at is not None:
                order.responded_at = min(utcnow(), order.created_at + timedelta(hours=3 + 22 * (number % 4)))
            notice = None
            if stage >= 2 and lines[0].state.value == "confirmed":
                notice = svc.create_ship_notice(
                    session,
                    order=order,
                    quantities={lines[0].id: lines[0].quantity},
                    shipment=svc.ShipmentInput(today, today + timedelta(days=2), "DHL", f"JD{number:06d}"),
                    expected_version=None,
                    actor=answering(supplier),
                )
            if stage == 3:
                # Every other one has come in part, its notice scanned at receipt: still on its way.
                partly = number % 8 == 7 and notice is not None
                svc.record_receipt(
                    session, order=order, line=lines[0], received_on=today, actor=buyer,
                    quantity=(lines[0].quantity / 2).quantize(Decimal("1")) if partly else lines[0].quantity,
                    ship_notice=notice if partly else None,
                )  # fmt: skip
            if number == 10 and lines[0].shipped_quantity:  # a change order after shipment: 50 more on the line
                svc.revise_line(
                    session, order=order, line=lines[0],
                    terms=svc.LineTerms(lines[0].quantity + 50, lines[0].requested_date + timedelta(days=14),
                                        lines[0].unit_price),
                    comment="The season runs longer: 50 more, two weeks later.", expected_version=None, actor=buyer,
                )  # fmt: skip
    session.flush()
    _seed_conversation(session, tenant, buyer_id)
    _settled(session, tenant.id, lambda: _seed_delivered_history(
        session, tenant, buyer_id, suppliers[:8], warehouses, (buyer, answering), today
    ))  # fmt: skip


def _settled(session: Session, tenant_id: int, seed: Callable[[], None]) -> None:
    """Run ``seed`` and mark the outbox events it wrote as delivered: the history of past months was notified,
    read and synced long ago in a portal in use. (Delivered again now, they made the buyer's bell open on some
    sixty unread notices about orders answered three months back.)"""
    from sqlalchemy import and_, func, update

    from portal.outbox import OutboxEvent

    def last_event() -> int:
        last = select(func.coalesce(func.max(OutboxEvent.id), 0)).where(OutboxEvent.tenant_id == tenant_id)
        return int(session.execute(last).scalar_one())

    session.flush()
    before = last_event()
    seed()
    session.flush()
    now = utcnow()
    seeded = and_(OutboxEvent.tenant_id == tenant_id, OutboxEvent.id > before, OutboxEvent.id <= last_event())
    session.execute(update(OutboxEvent).where(seeded).values(sent_at=now, done_at=now))


def _order_actors(session: Session, buyer_id: int) -> tuple[Actor, Callable[[Supplier], Actor]]:
    """Who does what in the demo's order history, as it would be in use: the buyer records receipts and closes
    orders; a supplier with people in the portal answers and ships itself; for the others (who answer by e-mail
    or phone) the buyer keys their answers in."""
    people = dict(session.execute(select(User.email, User.id).where(User.email.in_(SUPPLIER_PEOPLE.values()))).all())
    buyer_user = session.get(User, buyer_id)
    buyer = Actor(buyer_id, buyer_user.email if buyer_user else "demo", "")
    by_code = {code: Actor(people[email], email, "") for code, email in SUPPLIER_PEOPLE.items() if email in people}

    def answering(supplier: Supplier) -> Actor:
        return by_code.get(supplier.code, buyer)

    return buyer, answering


def _seed_conversation(session: Session, tenant: Tenant, buyer_id: int) -> None:
    """A buyer and Acme talking over the later date Acme proposed, on the order that waits for the buyer's
    decision: an order page's messages as people use them."""
    from portal.orders.models import OrderMessage, OrderState, PurchaseOrder

    order = session.execute(
        select(PurchaseOrder)
        .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
        .where(PurchaseOrder.tenant_id == tenant.id, Supplier.code == "ACME",
               PurchaseOrder.state == OrderState.CHANGES_PENDING)
        .order_by(PurchaseOrder.id)
        .limit(1)
    ).scalar_one_or_none()  # fmt: skip
    buyer = session.get(User, buyer_id)
    sam = session.execute(select(User).where(User.email == "sam@acme.example")).scalar_one_or_none()
    if order is None or sam is None or buyer is None:
        return
    moment = datetime.combine(date.today() - timedelta(days=1), time(9, 30), tzinfo=UTC)
    for minutes, author, from_supplier, body in (
        (0, buyer, False, "Can you keep the requested date on line 2? Our customer needs it that week."),
        (95, sam, True, "Our plating line is booked until then. We can ship half on the requested date and the rest "
                        "six days later, if a split works for you."),
    ):  # fmt: skip
        session.add(OrderMessage(tenant_id=tenant.id, order_id=order.id, author_id=author.id,
                                 author=author.name or author.email, from_supplier=from_supplier, body=body,
                                 created_at=moment + timedelta(minutes=minutes)))  # fmt: skip
    session.flush()


def _attach_delivery_plan(session: Session, tenant: Tenant, storage: LocalStorage) -> None:
    """Acme's answer in the demo conversation carries the split it proposes, as a PDF: files on messages."""
    from portal.documents.storage import put_in_transaction
    from portal.documents.validation import check_upload
    from portal.orders.models import OrderMessage, OrderMessageFile

    answer = session.execute(
        select(OrderMessage).where(OrderMessage.tenant_id == tenant.id, OrderMessage.from_supplier.is_(True))
        .order_by(OrderMessage.id).limit(1)
    ).scalar_one_or_none()  # fmt: skip
    if answer is None:
        return
    data = certificate_pdf(["Delivery plan", "Acme Fasteners, line 2: hex nut M8",
                            "Half on the requested date, the rest six days later",
                            "Plating line booked until then"])  # fmt: skip
    checked = check_upload("delivery-plan.pdf", data)
    key = put_in_transaction(session, storage, data)
    session.add(OrderMessageFile(tenant_id=tenant.id, order_id=answer.order_id, message_id=answer.id,
                                 storage_key=key, original_name="delivery-plan.pdf", size=checked.size,
                                 content_type=checked.content_type, sha256=checked.sha256))  # fmt: skip
    session.flush()


def _seed_delivered_history(
    session: Session,
    tenant: Tenant,
    buyer_id: int,
    suppliers: Sequence[Supplier],
    warehouses: Sequence[Warehouse],
    actors: tuple[Actor, Callable[[Supplier], Actor]],
    today: date,
) -> None:
    """Three closed months of answered and delivered orders, so that the scorecards open on figures rather than
    "no data": most deliveries on time, some a few days late, some short, in a pattern that differs by supplier."""
    from decimal import Decimal

    from portal.orders import services as svc
    from portal.orders.models import LineState, PurchaseOrder, PurchaseOrderLine

    buyer, answering = actors
    month = today.replace(day=1)
    for back in range(1, 4):
        month = (month - timedelta(days=1)).replace(day=1)
        for s_index, supplier in enumerate(suppliers):
            warehouse = warehouses[(s_index + back) % len(warehouses)]
            ordered = month + timedelta(days=1 + s_index % 3)
            order = PurchaseOrder(
                tenant_id=tenant.id, company_id=warehouse.company_id, warehouse_id=warehouse.id,
                supplier_id=supplier.id, buyer_id=buyer_id, currency="EUR", order_date=ordered,
                number=f"{tenant.slug[:2].upper()}-PO{4000 + back * 100 + s_index}",
            )  # fmt: skip
            session.add(order)
            session.flush()
            total = Decimal("0")
            for position in (1, 2):
                code, name, price = PRODUCTS[(s_index + back + position) % len(PRODUCTS)]
                quantity = Decimal(40 * position + 10 * s_index)
                session.add(
                    PurchaseOrderLine(
                        tenant_id=tenant.id, order_id=order.id, supplier_id=supplier.id, position=position,
                        product_code=code, product_name=name, quantity=quantity, unit="pc", unit_price=Decimal(price),
                        requested_date=ordered + timedelta(days=6 + 7 * position),
                    )
                )  # fmt: skip
                total += quantity * Decimal(price)
            order.total_value = total
            session.flush()
            lines = svc.order_lines(session, order)
            order.due_date = min(line.requested_date for line in lines)
            svc.accept_all(session, order=order, expected_version=None, actor=answering(supplier))
            # Answered within a day or four, as the supplier would have then (the service stamps the moment).
            order.created_at = datetime.combine(ordered, time(8), tzinfo=UTC)  # placed that morning
            order.responded_at = datetime.combine(ordered + timedelta(days=1 + (s_index + back) % 4), time(9),
                                                  tzinfo=UTC)  # fmt: skip
            for line in lines:
                pattern = (s_index * 3 + back + line.position) % 7
                days_late = {0: 3, 1: -1, 5: 6}.get(pattern, 0)  # late, a day early (on time), a week late
                quantity = line.quantity - Decimal(10) if pattern == 4 else line.quantity  # short
                arrived = line.requested_date + timedelta(days=days_late)
                svc.record_receipt(session, order=order, line=line, quantity=quantity, received_on=arrived, actor=buyer)
            if back > 1:
                # Older months are settled, as a buyer would have: a short remainder cancelled, the order closed.
                # Last month's short deliveries stay open, among the exceptions.
                for line in lines:
                    if line.state == LineState.PARTIALLY_RECEIVED:
                        svc.cancel_line(session, order=order, line=line, reason="Short delivery accepted; remainder "
                                        "not needed.", expected_version=None, actor=buyer)  # fmt: skip
                svc.close_order(session, order=order, expected_version=None, actor=buyer)
    session.flush()
