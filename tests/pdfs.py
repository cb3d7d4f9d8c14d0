"""Small PDFs built byte by byte for the upload tests (with a correct cross-reference table)."""

from __future__ import annotations


def build_pdf(catalog_extra: str = "", extra_objects: tuple[str, ...] = ()) -> bytes:
    objects = [
        f"<< /Type /Catalog /Pages 2 0 R {catalog_extra}>>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        *extra_objects,
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


CLEAN_PDF = build_pdf()
JAVASCRIPT_PDF = build_pdf("/OpenAction 4 0 R ", ("<< /S /JavaScript /JS (app.alert(1)) >>",))
HEX_ESCAPED_PDF = build_pdf("/OpenAction 4 0 R ", ("<< /S /J#61vaScript /J#53 (app.alert(1)) >>",))
LAUNCH_PDF = build_pdf("/OpenAction 4 0 R ", ("<< /S /Launch /F (calc.exe) >>",))
EMBEDDED_FILE_PDF = build_pdf(
    "/Names << /EmbeddedFiles << /Names [(a.txt) 4 0 R] >> >> ", ("<< /Type /Filespec /F (a.txt) >>",)
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17 + b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"
