"""The supplier API against its own OpenAPI description, with schemathesis: requests generated from it, valid
and invalid (bodies, queries, path ids), go to every operation with a real key; no answer may be a server
error, and each must be one the description documents (status, content type, JSON shape). Invalid requests
must be refused, and nothing a refused request carried may have been saved."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.case import Case
from sqlalchemy import func, select

from portal.api.openapi import document
from portal.auth.permissions import Role
from portal.db import set_context
from portal.documents import services as documents
from portal.documents.models import Document
from portal.documents.storage import LocalStorage
from portal.orders import services as svc
from portal.orders.models import CommitmentEntry, OrderMessage, OrderMessageFile
from tests.factories import (
    issue_api_key,
    make_member,
    make_order,
    make_supplier,
    make_tenant,
    make_tolerance,
    require_document,
)
from tests.pdfs import CLEAN_PDF

schema = schemathesis.openapi.from_dict(document())
DRAWS = itertools.count()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def api_world(app, session, tmp_path) -> dict[str, Any]:
    app.config["DOCUMENT_ROOT"] = str(tmp_path / "docs")
    tenant = make_tenant(session, "Northwind Fuzz")
    supplier = make_supplier(session, tenant, "Acme Fuzz")
    iso = require_document(session, tenant)
    make_tolerance(session, tenant)
    order = make_order(session, tenant, supplier, [("100", "2.50", 14), ("40", "10.00", 21)])
    confirmed = make_order(session, tenant, supplier, [("10", "1.00", 7)])
    person = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    svc.accept_all(session, order=confirmed, expected_version=None, actor=svc.Actor(None, "fuzz", ""))
    key = issue_api_key(session, person)
    lines = svc.order_lines(session, order) + svc.order_lines(session, confirmed)
    certificate = documents.upload(
        session, LocalStorage(tmp_path / "docs"), tenant_id=tenant.id, supplier_id=supplier.id,
        actor=svc.Actor(person.user.id, "fuzz", ""),
        data=documents.UploadInput(iso.id, "ISO 9001", "", "", None, None, "iso.pdf", CLEAN_PDF),
    )  # fmt: skip
    message = svc.post_message(
        session, order=order, author_id=person.user.id, author="fuzz", from_supplier=False, body="The drawing",
        files=(svc.AttachedFile("drawing.pdf", CLEAN_PDF),), storage=LocalStorage(tmp_path / "docs"),
    )  # fmt: skip
    (attached,) = session.execute(select(OrderMessageFile.id).where(OrderMessageFile.message_id == message.id)).all()
    set_context(session, tenant_id=None)
    return {"tenant_id": tenant.id, "orders": [order.id, confirmed.id], "lines": [line.id for line in lines],
            "documents": [certificate.id], "message": message.id, "file": attached.id, "key": key}  # fmt: skip


def _negative_at(case: Case, location: ParameterLocation) -> bool:
    return case.meta is not None and case.meta.is_negative_at(location)


def _aim_at_real_rows(case: Case, world: dict[str, Any], draw: int) -> None:
    """Half of the valid generated ids are replaced by the world's own (an id made up at random is all but
    always 404, which would leave the checks of the bodies untried); an invalid one stays as it was made."""
    if draw % 2 or _negative_at(case, ParameterLocation.PATH):
        return
    path = case.path_parameters or {}
    if "order_id" in path:
        path["order_id"] = world["orders"][draw % 4 // 2]
    if "line_id" in path:
        path["line_id"] = world["lines"][draw % len(world["lines"])]
    if "document_id" in path:
        path["document_id"] = world["documents"][0]
    if "message_id" in path:
        path["message_id"] = world["message"]
    if "file_id" in path:
        path["file_id"] = world["file"]


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_every_request_as_it_documents(case: Case, app, session, api_world) -> None:
    app.extensions["portal.ratelimiter"].reset()  # hundreds of calls with one key: the limit is not under test
    _aim_at_real_rows(case, api_world, next(DRAWS))
    # A generated key is swapped for the real one; a request generated with an invalid key, or none, keeps it
    # and must be refused.
    if case.headers and "Authorization" in case.headers and not _negative_at(case, ParameterLocation.HEADER):
        case.headers["Authorization"] = f"Bearer {api_world['key']}"
    before = _saved(session, api_world["tenant_id"])
    response = case.call_and_validate(app=app, checks=CHECKS)
    if response.status_code >= 400:
        assert _saved(session, api_world["tenant_id"]) == before  # refused: nothing saved


def _saved(session, tenant_id: int) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """How many ledger entries, documents, order messages and files on them the tenant has."""
    set_context(session, tenant_id=tenant_id)
    counted = (CommitmentEntry.id, Document.id, OrderMessage.id, OrderMessageFile.id)
    counts = session.execute(select(*(select(func.count(column)).scalar_subquery() for column in counted))).one()
    set_context(session, tenant_id=None)
    return tuple(int(count) for count in counts)
