"""The supplier API's certificates: an upload read from ``multipart/form-data``, and documents as JSON.

The rules are the compliance page's (``portal.documents.services.upload``: file checks, virus scan, the type,
dates, replacing one's own document only); this module only reads what a system sends, strictly, so that a
misspelt field or a date it did not mean is refused instead of being quietly dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.api.services import BadRequest, day_text
from portal.documents.models import Document, DocumentReview, DocumentType
from portal.documents.services import RequirementStatus
from portal.numbers import whole_number

FILE_FIELD = "file"
# Text fields an upload takes, with their longest value (None: not free text).
TEXT_FIELDS: dict[str, int | None] = {
    "document_type": 32,
    "title": 200,
    "issuer": 200,
    "certificate_number": 80,
    "issue_date": None,
    "expiry_date": None,
    "replaces": None,
}
REQUIRED = ("document_type", "title")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
PAGE_SIZE = 50


class _Upload(Protocol):
    """What is read of an uploaded file (werkzeug's ``FileStorage``)."""

    filename: str | None

    def read(self) -> bytes: ...


class _MultiDict(Protocol):
    def getlist(self, key: str) -> list[Any]: ...
    def __iter__(self) -> Iterator[str]: ...


@dataclass(frozen=True)
class UploadRequest:
    document_type: str
    title: str
    issuer: str
    certificate_number: str
    issue_date: date | None
    expiry_date: date | None
    replaces: int | None
    filename: str
    data: bytes


def _day(raw: str, name: str, problems: dict[str, list[str]]) -> date | None:
    try:
        if _DAY.match(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    problems.setdefault(name, []).append(f"{name} must be a date, YYYY-MM-DD (leave the field out when there is none).")
    return None


def parse_upload(form: _MultiDict, files: _MultiDict) -> tuple[UploadRequest | None, dict[str, list[str]]]:
    """An upload's fields, read: the request (None when a field needs attention) and the problems by field.
    Raises BadRequest for what is not the documented shape at all (an unknown or repeated field, no file)."""
    unknown = sorted(set(form) - set(TEXT_FIELDS)) + sorted(set(files) - {FILE_FIELD})
    if unknown:
        raise BadRequest(
            f"Unknown field {unknown[0]!r}: an upload takes {', '.join([*TEXT_FIELDS, FILE_FIELD])}.", unknown[0]
        )
    for name in [*form, *files]:
        if len(form.getlist(name) if name in TEXT_FIELDS else files.getlist(name)) > 1:
            raise BadRequest(f"Send {name} once.", name)
    uploaded = files.getlist(FILE_FIELD)
    if not uploaded:
        raise BadRequest("Send the certificate as the file part 'file' of a multipart/form-data request.", "file")
    values = {name: (form.getlist(name) or [""])[0] for name in TEXT_FIELDS}
    problems: dict[str, list[str]] = {}
    for name, limit in TEXT_FIELDS.items():
        if limit is not None and len(values[name]) > limit:
            problems.setdefault(name, []).append(f"Keep {name} to {limit} characters.")
    for name in REQUIRED:
        if not values[name].strip():
            problems.setdefault(name, []).append(f"{name} is required.")
    given = {name for name in TEXT_FIELDS if form.getlist(name)}
    issue_date = _day(values["issue_date"], "issue_date", problems) if "issue_date" in given else None
    expiry_date = _day(values["expiry_date"], "expiry_date", problems) if "expiry_date" in given else None
    replaces = None
    if "replaces" in given:
        replaces = whole_number(values["replaces"]) or None
        if replaces is None:
            problems.setdefault("replaces", []).append("replaces must be the id of one of your documents.")
    if problems:
        return None, problems
    upload: _Upload = uploaded[0]
    return UploadRequest(
        document_type=values["document_type"].strip(),
        title=values["title"],
        issuer=values["issuer"],
        certificate_number=values["certificate_number"],
        issue_date=issue_date,
        expiry_date=expiry_date,
        replaces=replaces,
        filename=upload.filename or "",
        data=upload.read(),
    ), {}


def upload_fingerprint(path: str, form: _MultiDict, filename: str, data: bytes) -> str:
    """What makes a retried upload the same request: its fields and its file's name and content. (Not its raw
    body: a client draws a new multipart boundary for each attempt.)"""
    fields = sorted((name, form.getlist(name)) for name in form)
    body = json.dumps([fields, filename, hashlib.sha256(data).hexdigest()]).encode()
    return hashlib.sha256(b"\0".join((b"POST", path.encode(), body))).hexdigest()


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def type_document(doc_type: DocumentType) -> dict[str, str]:
    return {"code": doc_type.code, "name": doc_type.name}


def document_document(document: Document, doc_type: DocumentType, url: str) -> dict[str, Any]:
    """One certificate as the API gives it (``url`` is its own address; its file is at ``url/file``)."""
    return {
        "id": document.id,
        "document_type": type_document(doc_type),
        "title": document.title,
        "issuer": document.issuer,
        "certificate_number": document.certificate_number,
        "issue_date": day_text(document.issue_date),
        "expiry_date": day_text(document.expiry_date),
        "status": document.status.value,
        "replaces": document.supersedes_id,
        "file": {
            "name": document.original_name,
            "size": document.size,
            "content_type": document.content_type,
            "sha256": document.sha256,
        },
        "uploaded_at": _stamp(document.created_at),
        "url": url,
        "file_url": f"{url}/file",
    }


def reviews_of(session: Session, document: Document) -> list[dict[str, Any]]:
    """The document's reviews, oldest first: what the compliance team decided and told the supplier (not who)."""
    rows = session.execute(
        select(DocumentReview)
        .where(DocumentReview.tenant_id == document.tenant_id, DocumentReview.document_id == document.id)
        .order_by(DocumentReview.id)
    ).scalars()
    return [
        {
            "decision": review.decision,
            "comment": review.comment or "",
            "valid_until": day_text(review.valid_until),
            "reviewed_at": _stamp(review.created_at),
        }
        for review in rows
    ]


def documents_page(
    session: Session, *, tenant_id: int, supplier_id: int, page: int
) -> tuple[list[tuple[Document, DocumentType]], int]:
    """One page of the supplier account's documents, newest first, and how many there are (2 statements)."""
    mine = (Document.tenant_id == tenant_id, Document.supplier_id == supplier_id)
    total = session.execute(select(func.count(Document.id)).where(*mine)).scalar_one()
    rows = session.execute(
        select(Document, DocumentType)
        .join(DocumentType, DocumentType.id == Document.document_type_id)
        .where(*mine)
        .order_by(Document.created_at.desc(), Document.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    return [(document, doc_type) for document, doc_type in rows], int(total)


def requirement_document(status: RequirementStatus, url_of: Mapping[int, str]) -> dict[str, Any]:
    """A requirement the supplier must meet, with its state and the document behind it."""
    document = status.document
    return {
        "document_type": type_document(status.document_type),
        "state": status.state,
        "detail": status.detail,
        "document": None
        if document is None
        else {"id": document.id, "status": document.status.value, "expiry_date": day_text(document.expiry_date),
              "url": url_of[document.id]},
    }  # fmt: skip


def type_by_code(types: Sequence[DocumentType], code: str) -> DocumentType | None:
    """A document type by its code, as the compliance team wrote it or in any case."""
    exact = next((t for t in types if t.code == code), None)
    return exact or next((t for t in types if t.code.casefold() == code.casefold()), None)
