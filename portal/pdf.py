"""PDFs made from the portal's own templates with WeasyPrint.

WeasyPrint fetches what a document links to; here it may load the portal's own static files and nothing else
(no ``file://``, no network): a supplier's name or a product name with markup in it cannot make the server
read a local file or call out while a PDF is made (as indico's receipts do, ``modules/receipts/util.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app
from markupsafe import Markup

# The documents' base URL: never fetched from the network, only mapped to the static folder below.
ASSET_BASE = "https://portal.invalid/"


def safe_fetcher(url: str, timeout: int = 10, ssl_context: Any = None) -> dict[str, Any]:
    """WeasyPrint may load the portal's own static files, and nothing else (no file://, no network)."""
    prefix = ASSET_BASE + "static/"
    if not url.startswith(prefix):
        raise ValueError(f"refused to load {url[:80]!r} while making a PDF")
    root = Path(current_app.static_folder or "").resolve()
    target = (root / url[len(prefix) :].split("?", 1)[0]).resolve()
    if root not in target.parents or not target.is_file():
        raise ValueError(f"refused to load {url[:80]!r} while making a PDF")
    return {"string": target.read_bytes(), "mime_type": "text/css" if target.suffix == ".css" else None}


def fetcher() -> Any:
    """``safe_fetcher`` in the form this WeasyPrint wants (a URLFetcher since 68, a function before)."""
    from weasyprint import urls

    if not hasattr(urls, "URLFetcherResponse"):
        return safe_fetcher

    class PortalAssets(urls.URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            found = safe_fetcher(url)
            return urls.URLFetcherResponse(url, found["string"], {"Content-Type": found["mime_type"] or "text/css"})

    return PortalAssets()


def code128_svg(value: str) -> Markup:
    """``value`` as a Code 128 barcode (what a receiving dock's scanner reads), an inline SVG element for a PDF
    template. Its bars only: the template prints the value under it, escaped as any text."""
    from barcode import Code128
    from barcode.writer import SVGWriter

    # Modules of 0.3 mm (GS1 asks at least 0.25 for logistics labels), 12 mm high, the quiet zones around.
    svg = Code128(value, writer=SVGWriter()).render(
        {"write_text": False, "module_width": 0.3, "module_height": 12.0, "quiet_zone": 3.0, "compress": False}
    )
    text = svg.decode("utf-8")
    # The <svg> element alone (no XML declaration or doctype inside an HTML document). It holds only rectangles:
    # without its text, the value is nowhere in it, so no markup from a number can slip through.
    return Markup(text[text.index("<svg") :])  # noqa: S704


def html_to_pdf(html: str) -> bytes:
    """``html`` (rendered from a portal template, its links relative to ``ASSET_BASE``) as a PDF."""
    from weasyprint import HTML

    return HTML(string=html, base_url=ASSET_BASE, url_fetcher=fetcher()).write_pdf()
