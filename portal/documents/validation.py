"""Checks every upload must pass before anything is stored.

Policy: PDF, PNG or JPEG only; the content is sniffed from its first bytes and
must match the extension (the declared type is ignored); empty files, files
carrying a second format (polyglots) and PDFs with active content are refused.
Active content is found with a PDF parser walking the whole object graph, so
names written with ``#xx`` escapes (``/J#61vaScript``) are caught too; an
encrypted or unreadable PDF is refused because nobody could review it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import PurePath

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

MAX_BYTES = 10 * 1024 * 1024
EXTENSIONS = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
# Markers of another format hidden in the same file.
FOREIGN_MARKERS = (b"%PDF-", b"PK\x03\x04", b"PK\x05\x06", b"<script", b"<html", b"<svg", b"MZ\x90\x00")
ACTIVE_PDF_NAMES = frozenset(
    {
        "/JavaScript",
        "/JS",
        "/OpenAction",
        "/AA",
        "/Launch",
        "/EmbeddedFile",
        "/EmbeddedFiles",
        "/XFA",
        "/RichMedia",
        "/SubmitForm",
        "/ImportData",
        "/GoToR",
        "/GoToE",
    }
)
MAX_PDF_OBJECTS = 200_000


class UploadRejected(Exception):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class CheckedFile:
    content_type: str
    sha256: str
    size: int


def sniff(data: bytes) -> str | None:
    return next((kind for signature, kind in SIGNATURES if data.startswith(signature)), None)


def check_upload(filename: str, data: bytes) -> CheckedFile:
    if not data:
        raise UploadRejected("The file is empty.")
    if len(data) > MAX_BYTES:
        raise UploadRejected("The file is larger than 10 MB.", status=413)
    extension = PurePath(filename or "").suffix.lower()
    if extension not in EXTENSIONS:
        raise UploadRejected("Only PDF, PNG or JPEG files are accepted.")
    kind = sniff(data)
    if kind is None:
        raise UploadRejected("The content is not a PDF, PNG or JPEG file.")
    if kind != EXTENSIONS[extension]:
        raise UploadRejected(
            f"The file's content ({kind.split('/')[1].upper()}) does not match its extension ({extension})."
        )
    body = data[8:].lower()
    for marker in FOREIGN_MARKERS:
        if marker.lower() in body and not (kind == "application/pdf" and marker == b"%PDF-"):
            raise UploadRejected("The file hides a second file format inside it; upload a clean PDF, PNG or JPEG.")
    if kind == "application/pdf":
        check_pdf(data)
    return CheckedFile(kind, hashlib.sha256(data).hexdigest(), len(data))


def check_pdf(data: bytes) -> None:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise UploadRejected("Encrypted PDFs cannot be reviewed; upload it without a password.")
        found = _active_names(reader)
        _ = len(reader.pages)  # a PDF without a readable page tree is not a document
    except UploadRejected:
        raise
    except Exception as exc:  # any parser failure means nobody could review it
        raise UploadRejected("The PDF cannot be read. Save it again as a standard PDF and upload that.") from exc
    if found:
        names = ", ".join(sorted(n.lstrip("/") for n in found))
        raise UploadRejected(f"The PDF contains active content ({names}); upload a version without it.")


def _active_names(reader: PdfReader) -> set[str]:
    """Every active-content name anywhere in the document's object graph."""
    found: set[str] = set()
    seen: set[tuple[int, int]] = set()
    stack: list[object] = [reader.trailer]
    visited = 0
    while stack:
        item = stack.pop()
        visited += 1
        if visited > MAX_PDF_OBJECTS:
            raise UploadRejected("The PDF is too complex to check.")
        if isinstance(item, IndirectObject):
            ref = (item.idnum, item.generation)
            if ref in seen:
                continue
            seen.add(ref)
            stack.append(item.get_object())
        elif isinstance(item, DictionaryObject):
            for key, value in item.items():
                if str(key) in ACTIVE_PDF_NAMES:
                    found.add(str(key))
                stack.append(value)
        elif isinstance(item, ArrayObject):
            stack.extend(item)
        elif isinstance(item, NameObject) and str(item) in ACTIVE_PDF_NAMES:
            found.add(str(item))
    return found
