"""Every form on every page, sent back with hostile values in its fields (all of a filter's, the typed-in ones
of a form that posts): no answer may be a server error. The forms are read off the pages as each role sees them
(the access matrix's world), so a form added to a page is covered without a line here."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from tests.test_access_matrix import MATRIX, ROLES, sign_in_as, url
from tests.test_access_matrix import world as world  # the fixture

TEXT_INPUTS = {"text", "email", "search", "url", "tel", "number", "date", "password"}
# Forms whose success ends the session the walk goes on with.
SKIPPED_ACTIONS = ("/logout", "/end")


@dataclass
class Form:
    action: str | None
    method: str
    fields: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name -> (kind, value)


class FormReader(HTMLParser):
    """The forms of a page: each field's kind (text, file, fixed) and the value a person would send for
    fields that are not typed in (hidden fields, the first option of a select, a checkbox's value)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        name = given.get("name")
        if tag == "form":
            self._form = Form(given.get("action"), (given.get("method") or "get").lower())
            self.forms.append(self._form)
        elif self._form is None or (not name and tag != "option"):
            return
        elif tag == "select" and name:
            self._select = name
            self._form.fields.setdefault(name, ("fixed", None))
        elif tag == "option" and self._select and self._form.fields[self._select][1] is None:
            self._form.fields[self._select] = ("fixed", given.get("value") or "")
        elif tag == "textarea" and name:
            self._form.fields[name] = ("text", "")
        elif tag == "input" and name:
            kind = (given.get("type") or "text").lower()
            if kind in TEXT_INPUTS:
                self._form.fields[name] = ("text", "")
            elif kind == "file":
                self._form.fields[name] = ("file", None)
            else:  # hidden, checkbox, radio, submit: what the page put there (a checkbox's default is "on")
                default = "on" if kind in ("checkbox", "radio") else ""
                self._form.fields.setdefault(name, ("fixed", given.get("value") or default))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


HOSTILE = {
    "overlong": "x" * 5000,
    "huge number": "1e400",
    "impossible date": "9999-99-99",
    "NUL": "PO\x00-1",
    "wide digits": "\uff12\uff10\uff12\uff16-\uff11\uff12-\uff10\uff11",  # 2026-12-01 in full-width digits
    # A digit to str.isdigit() that int() refuses; more digits than int() reads; an id beyond a BIGINT.
    "superscript digit": "\u00b2",
    "endless digits": "9" * 5000,
    "beyond bigint": "9" * 25,
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_every_form_refuses_hostile_values_without_a_server_error(app, session, world, value):
    posted, failures = 0, []
    for endpoint, (access, methods, _) in MATRIX.items():
        if "GET" not in methods or access.kind not in ("permission", "signed_in"):
            continue
        for role in ROLES:
            client = sign_in_as(app, session, world, role)
            target = url(app, endpoint, world, "own", role)
            page = client.get(target)
            if page.status_code != 200 or "text/html" not in page.content_type:
                continue
            reader = FormReader()
            reader.feed(page.text)
            for form in reader.forms:
                action = form.action or target
                if action.endswith(SKIPPED_ACTIONS):
                    continue
                if form.method == "get":
                    # A filter or search: every field of it hostile, the choices too (a query is typed by anyone).
                    # The page number too, which the list's links carry.
                    responses = [client.get(action, query_string=dict.fromkeys([*form.fields, "page"], value))]
                else:
                    # The typed-in fields hostile, then every field but the CSRF token (hidden ids and versions, the
                    # choices): a request is made by anyone, not only by the page.
                    responses = [
                        client.post(action, data=_posted(form, value, every_field), content_type="multipart/form-data")
                        for every_field in (False, True)
                    ]
                posted += 1
                failures += [f"{role} {action} ({endpoint}): {r.status_code}" for r in responses if r.status_code > 499]
            break  # the first role that sees the page: its forms are the page's
    assert posted > 55  # the walk reached the forms (60 when this was written)
    assert failures == []


def _posted(form: Form, value: str, every_field: bool = False) -> dict[str, object]:
    """A POST form's fields: the typed-in ones hostile, the others as the page offers them (so the request gets
    past the choices to the rules behind them); with ``every_field``, all but the CSRF token hostile."""
    data: dict[str, object] = {}
    for name, (kind, fixed) in form.fields.items():
        if kind == "text" or (every_field and kind == "fixed" and name != "csrf_token"):
            data[name] = value
        elif kind == "file":
            data[name] = (io.BytesIO(f"order,qty\n{value},{value}\n".encode()), "upload.csv")
        else:
            data[name] = fixed or ""
    return data
