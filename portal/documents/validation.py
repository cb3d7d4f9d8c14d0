"""Checks every upload must pass before anything is stored.

Policy: PDF, PNG or JPEG only; the content is sniffed from its first bytes and
must match the extension (the declared type is ignored); empty files, files
carrying a second format (polyglots) and PDFs with active content are refused.
Active content is found with a PDF parser walking the whole object graph, so
names written with ``#xx`` escapes (``/J#61vaScript``) are caught too; an
encrypted or unreadable PDF is refused because nobody could review it.

Files attached to order messages (drawings, delivery plans, quality reports) may also be Office Open XML
documents (XLSX, DOCX, PPTX) and plain text (CSV, TXT, STEP models), under ``check_attachment``: an Office file
must be a readable package of its extension's kind, without macros, ActiveX controls, embedded OLE objects or
links that fetch a remote template or object when opened; a text file must be text (no NUL, UTF-8 or
Windows-1252) carrying no second format. Certificates stay PDF, PNG or JPEG: a reviewer must see them as issued.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
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


# Office Open XML packages: the content type, and the part that makes a package that kind of document.
OFFICE_TYPES = {
    ".xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xl/workbook.xml", "XLSX"),
    ".docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "word/document.xml", "DOCX"),
    ".pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation", "ppt/presentation.xml",
              "PPTX"),
}  # fmt: skip
TEXT_TYPES = {".csv": "text/csv", ".txt": "text/plain", ".step": "model/step", ".stp": "model/step"}
ATTACHMENT_TYPES = sorted({*EXTENSIONS.values(), *(kind for kind, _, _ in OFFICE_TYPES.values()), *TEXT_TYPES.values()})
ATTACHMENT_EXTENSIONS = sorted({*EXTENSIONS, *OFFICE_TYPES, *TEXT_TYPES})
ATTACHMENT_KINDS = "PDF, PNG, JPEG, XLSX, DOCX, PPTX, CSV, TXT or STEP"
# A package is read member by member, never unpacked: these bound what a crafted one (a zip bomb) can cost.
OFFICE_MEMBERS = 10_000
OFFICE_PART_BYTES = 1024 * 1024  # the content types and relationships read, each at most
# Parts that run code or carry another program: macros, ActiveX controls, embedded OLE objects.
ACTIVE_OFFICE_PARTS = re.compile(r"vbaproject\.bin$|vbadata\.xml$|(^|/)activex/|(^|/)embeddings/[^/]*\.bin$", re.I)
# A relationship that, opened, fetches something from elsewhere and runs or shows it (a remote template, an
# OLE object or frame): the way documents pull in their payload. Hyperlinks, also external, are not.
REMOTE_RELATIONSHIP = re.compile(
    rb"<Relationship\b(?=[^>]*\bTargetMode\s*=\s*[\"']External[\"'])"
    rb"(?=[^>]*\bType\s*=\s*[\"'][^\"']*/(attachedTemplate|oleObject|frame|subDocument|package)[\"'])",
    re.I,
)


def check_attachment(filename: str, data: bytes) -> CheckedFile:
    """A file attached to an order message: the certificates' policy for PDF, PNG and JPEG, and the checks of
    this module's docstring for Office documents and text."""
    extension = PurePath(filename or "").suffix.lower()
    if extension in EXTENSIONS:
        return check_upload(filename, data)
    if not data:
        raise UploadRejected("The file is empty.")
    if len(data) > MAX_BYTES:
        raise UploadRejected("The file is larger than 10 MB.", status=413)
    if extension in OFFICE_TYPES:
        content_type = check_office(data, extension)
    elif extension in TEXT_TYPES:
        content_type = check_text(data, extension)
    else:
        raise UploadRejected(f"Only {ATTACHMENT_KINDS} files can be attached.")
    return CheckedFile(content_type, hashlib.sha256(data).hexdigest(), len(data))


def check_office(data: bytes, extension: str) -> str:
    content_type, main_part, label = OFFICE_TYPES[extension]
    unreadable = UploadRejected(f"The file cannot be read as {label}. Save it again as {label} and attach that.")
    if not data.startswith(b"PK\x03\x04"):
        raise unreadable
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
            if len(members) > OFFICE_MEMBERS:
                raise UploadRejected(f"The {label} file has too many parts to check.")
            names = {member.filename for member in members}
            if "[Content_Types].xml" not in names:
                raise unreadable
            if main_part not in names:
                other = next((other for ext, (_, part, other) in OFFICE_TYPES.items() if part in names), None)
                if other is None:
                    raise unreadable
                raise UploadRejected(f"The file's content ({other}) does not match its extension ({extension}).")
            if any(ACTIVE_OFFICE_PARTS.search(name) for name in names):
                raise UploadRejected(
                    f"The {label} file contains macros, ActiveX controls or embedded objects; save a copy without "
                    "them and attach that."
                )
            types = _read_part(package, "[Content_Types].xml")
            if b"macroenabled" in types.lower() or b"vbaproject" in types.lower():
                raise UploadRejected(f"The {label} file is macro-enabled; save it as a plain {label} and attach that.")
            for name in sorted(names):
                if name.endswith(".rels") and REMOTE_RELATIONSHIP.search(_read_part(package, name)):
                    raise UploadRejected(
                        f"The {label} file loads a template or object from elsewhere when opened; save a copy "
                        "without that link and attach it."
                    )
    except UploadRejected:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, ValueError, EOFError) as exc:
        raise unreadable from exc
    return content_type


def _read_part(package: zipfile.ZipFile, name: str) -> bytes:
    with package.open(name) as part:
        data = part.read(OFFICE_PART_BYTES + 1)
    if len(data) > OFFICE_PART_BYTES:
        raise UploadRejected(f"The part {name} of the file is too large to check.")
    return data


def check_text(data: bytes, extension: str) -> str:
    kind = "a STEP model" if TEXT_TYPES[extension] == "model/step" else "text"
    if b"\0" in data:
        raise UploadRejected(f"The file is not {kind}: it holds binary data.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")  # a spreadsheet's CSV as Windows saves it
        except UnicodeDecodeError as exc:
            raise UploadRejected(f"The file is not {kind}: save it as UTF-8 text.") from exc
    lowered = data.lower()
    if any(marker.lower() in lowered for marker in FOREIGN_MARKERS):
        raise UploadRejected("The file hides a second file format inside it; attach a clean copy.")
    if TEXT_TYPES[extension] == "model/step" and not text.lstrip().startswith("ISO-10303-21;"):
        raise UploadRejected("The file is not a STEP model (ISO 10303-21): it does not begin with ISO-10303-21;.")
    return TEXT_TYPES[extension]
