"""Files attached to order messages: Office documents and text besides PDF, PNG and JPEG, each checked for
what it really is and for what it would run or fetch when opened; certificates keep their narrower policy."""

from __future__ import annotations

import pytest

from portal.documents.validation import ATTACHMENT_TYPES, UploadRejected, check_attachment, check_upload
from tests.office import (
    ACTIVEX_DOCX,
    DOCX,
    HYPERLINKED_DOCX,
    MACRO_TYPES_DOCX,
    MACRO_XLSX,
    OLE_DOCX,
    REMOTE_TEMPLATE_DOCX,
    XLSX,
    package,
)
from tests.pdfs import CLEAN_PDF, PNG

CSV = b"line,quantity,date\r\n1,60,2026-12-01\r\n2,40,2026-12-08\r\n"
STEP = b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('bracket'),'2;1');\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n"

ACCEPTED = [
    ("plan.xlsx", XLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("Plan.XLSX", XLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("report.docx", DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("specs.docx", HYPERLINKED_DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("plan.csv", CSV, "text/csv"),
    ("plan-excel.csv", "Menge;Datum;Bemerkung\r\n60;01.12.2026;Größe\r\n".encode("cp1252"), "text/csv"),
    ("notes.txt", "Lot 4711 — tested 2026-11-20\n".encode(), "text/plain"),
    ("bracket.step", STEP, "model/step"),
    ("bracket.stp", b"\xef\xbb\xbf" + STEP, "model/step"),
    ("drawing.pdf", CLEAN_PDF, "application/pdf"),
    ("sample.png", PNG, "image/png"),
]

REFUSED = [
    ("tool.exe", b"MZ\x90\x00", 422, "Only PDF, PNG, JPEG, XLSX, DOCX, PPTX, CSV, TXT or STEP files can be attached."),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 422, "can be attached"),
    ("empty.csv", b"", 422, "The file is empty."),
    ("big.csv", b"1,2\n" * (3 * 1024 * 1024), 413, "larger than 10 MB"),
    ("plan.xlsx", b"line,quantity\n1,60\n", 422, "cannot be read as XLSX"),
    ("plan.xlsx", b"PK\x03\x04 cut short", 422, "cannot be read as XLSX"),
    ("archive.docx", package({"readme.txt": b"hello"}), 422, "cannot be read as DOCX"),
    ("report.xlsx", DOCX, 422, "The file's content (DOCX) does not match its extension (.xlsx)."),
    ("plan.docx", XLSX, 422, "The file's content (XLSX) does not match its extension (.docx)."),
    ("macro.xlsx", MACRO_XLSX, 422, "contains macros, ActiveX controls or embedded objects"),
    ("macro.docx", MACRO_TYPES_DOCX, 422, "is macro-enabled"),
    ("ole.docx", OLE_DOCX, 422, "contains macros, ActiveX controls or embedded objects"),
    ("activex.docx", ACTIVEX_DOCX, 422, "contains macros, ActiveX controls or embedded objects"),
    ("template.docx", REMOTE_TEMPLATE_DOCX, 422, "loads a template or object from elsewhere when opened"),
    ("photo.csv", PNG, 422, "The file is not text: it holds binary data."),
    ("drawing.txt", CLEAN_PDF, 422, "hides a second file format"),
    ("page.txt", b"<html><script>alert(1)</script></html>", 422, "hides a second file format"),
    ("bad.csv", b"\x81\x8d\x8f\x90\x9d", 422, "save it as UTF-8 text"),
    ("bracket.step", b"solid bracket\nendsolid\n", 422, "The file is not a STEP model (ISO 10303-21)"),
]


@pytest.mark.parametrize(("name", "data", "content_type"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_attachments_of_every_kind_are_accepted_with_their_content_type(name, data, content_type):
    checked = check_attachment(name, data)
    assert (checked.content_type, checked.size) == (content_type, len(data))
    assert content_type in ATTACHMENT_TYPES  # the API's description lists it


@pytest.mark.parametrize(("name", "data", "status", "message"), REFUSED, ids=[f"{r[0]}:{r[3][:30]}" for r in REFUSED])
def test_attachments_that_would_mislead_or_run_something_are_refused(name, data, status, message):
    with pytest.raises(UploadRejected) as refused:
        check_attachment(name, data)
    assert refused.value.status == status and message in refused.value.message


def test_certificates_stay_pdf_png_or_jpeg():
    with pytest.raises(UploadRejected, match="Only PDF, PNG or JPEG files are accepted"):
        check_upload("certificate.xlsx", XLSX)
