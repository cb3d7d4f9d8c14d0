"""A test client that drives the real forms: CSRF token read from the page, TOTP
codes computed from the user's secret."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class TotpClock:
    """Hands out codes for successive time steps, so a test can sign in twice
    without replaying a code (the portal accepts the current step +-1)."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def code(self, secret: str) -> str:
        offset = self.used.get(secret, -1) + 1
        if offset > 1:
            raise RuntimeError("no unused code left in the +-1 window; wait for the next step")
        self.used[secret] = offset
        return pyotp.TOTP(secret).at(time.time() + 30 * offset)


class PortalClient:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.totp = TotpClock()

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        return self.client.post(url, data=data or {}, **kwargs)

    def submit(self, url: str, data: dict[str, Any] | None = None, *, page: str | None = None) -> TestResponse:
        """GET ``page`` (default ``url``), take its CSRF token and POST ``data`` to ``url``."""
        form_page = self.client.get(page or url)
        assert form_page.status_code == 200, f"GET {page or url} gave {form_page.status_code}"
        return self.client.post(url, data={"csrf_token": csrf_from(form_page.text), **(data or {})})

    def csrf(self, page: str = "/login") -> str:
        return csrf_from(self.client.get(page).text)

    def password_step(self, email: str, password: str) -> TestResponse:
        return self.submit("/login", {"email": email, "password": password})

    def sign_in(self, email: str, password: str, secret: str) -> TestResponse:
        first = self.password_step(email, password)
        assert first.status_code == 302 and first.headers["Location"].endswith("/login/verify"), first.status_code
        second = self.submit("/login/verify", {"code": self.totp.code(secret)})
        assert second.status_code == 302, second.text[:500]
        return second

    def sign_out(self) -> TestResponse:
        page = self.client.get("/account")
        return self.client.post("/logout", data={"csrf_token": csrf_from(page.text)})


# Links a crawl does not follow: they change something, or answer with a file rather than a page.
NOT_FOLLOWED = ("/logout", ".pdf", "/download", "/preview/", ".csv", ".xlsx", "/documents/export", "/static/")


def crawl(client: PortalClient, limit: int) -> tuple[set[str], list[tuple[int, str]]]:
    """Follow every link of every page from the home page, breadth first, up to ``limit`` pages: the pages
    seen, and those that did not answer 200 (with their status)."""
    seen: set[str] = set()
    waiting, broken = ["/"], []
    while waiting and len(seen) < limit:
        url = waiting.pop(0)
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        if response.status_code != 200:
            broken.append((response.status_code, url))
            continue
        if response.mimetype == "text/html":
            for href in re.findall(r'href="(/[^"#]*)', response.text):
                href = href.replace("&amp;", "&")
                if not href.startswith("//") and not any(part in href for part in NOT_FOLLOWED) and href not in seen:
                    waiting.append(href)
    return seen, broken
