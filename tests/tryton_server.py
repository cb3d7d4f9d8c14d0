"""A real Tryton 8.2 server with the purchase module, for the ERP sync tests.

The first run installs trytond into a virtual environment under the user's cache
folder and initialises a database template (about a minute); every later run
copies the template and starts a server in about a second. The template already
holds a currency, the buying company (attached to the admin user) and a product.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from portal.erp.tryton import TrytonClient

VERSION = "8.2"
ADMIN_PASSWORD = "tryton-admin-pw"
TEMPLATE_VERSION = "2"  # bump when the template's seed data changes
CACHE = Path(os.environ.get("PORTAL_TRYTON_CACHE") or Path.home() / ".cache" / "supplier-portal" / f"tryton-{VERSION}")


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")


def _env(db_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRYTOND_DATABASE__URI": "sqlite://",
        "TRYTOND_DATABASE__PATH": str(db_dir),
        "TRYTONPASSFILE": str(CACHE / "passfile"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.post(f"{url}/rpc/", json={"id": 0, "method": "common.server.version", "params": []})
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Tryton at {url} did not answer within {timeout} s")
        time.sleep(0.1)


def ensure_template() -> Path:
    """The cached venv and the initialised template database; built once, under a lock."""
    CACHE.mkdir(parents=True, exist_ok=True)
    template = CACHE / "template" / "template.sqlite"
    marker = CACHE / f"template-{TEMPLATE_VERSION}.ready"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and template.exists():
            return template
        venv = CACHE / "venv"
        if not (venv / "bin" / "trytond").exists():
            _run([sys.executable, "-m", "venv", str(venv)])
            _run(
                [str(venv / "bin" / "pip"), "install", "-q", f"trytond=={VERSION}.*", f"trytond-purchase=={VERSION}.*"]
            )
        (CACHE / "passfile").write_text(ADMIN_PASSWORD + "\n")
        shutil.rmtree(template.parent, ignore_errors=True)
        template.parent.mkdir(parents=True)
        template.touch()
        env = _env(template.parent)
        _run(
            [
                str(venv / "bin" / "trytond-admin"),
                "-d",
                "template",
                "--all",
                "-u",
                "purchase",
                "--activate-dependencies",
                "--email",
                "admin@example.com",
            ],
            env=env,
        )
        # Seed the buying company with a server on the template, then stop it before copying.
        port = free_port()
        server = _start(venv, template.parent, "template", port)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(url)
            _seed(TrytonClient(url, "template", "admin", ADMIN_PASSWORD))
        finally:
            server.terminate()
            server.wait(timeout=20)
        # Tryton's SQLite runs in WAL mode: fold the log into the file, which is what gets copied.
        with contextlib.closing(sqlite3.connect(template)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("PRAGMA journal_mode=DELETE")
        marker.write_text("ok")
        return template


def _start(venv: Path, db_dir: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    env = {**_env(db_dir), "TRYTOND_WEB__LISTEN": f"127.0.0.1:{port}"}
    return subprocess.Popen(
        [str(venv / "bin" / "trytond"), "-d", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(db_dir / "trytond.log", "ab"),
    )


def _seed(client: TrytonClient) -> None:
    client.login()
    currency = client.call(
        "currency.currency",
        "create",
        [{"name": "Euro", "code": "EUR", "symbol": "€", "rounding": Decimal("0.01"), "digits": 2}],
    )
    party = client.call("party.party", "create", [{"name": "Northwind Distribution"}])
    company = client.call("company.company", "create", [{"party": party[0], "currency": currency[0]}])
    admin = client.search_read("res.user", [("login", "=", "admin")], ["id"])[0]["id"]
    client.call("res.user", "write", [admin], {"companies": [["add", company]], "company": company[0]})


@dataclass
class TrytonServer:
    url: str
    database: str
    process: subprocess.Popen[bytes]
    login: str = "admin"
    password: str = ADMIN_PASSWORD

    def client(self) -> TrytonClient:
        client = TrytonClient(self.url, self.database, self.login, self.password)
        client.login()
        return client

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)


def start_server(work_dir: Path, name: str = "portal_test") -> TrytonServer:
    template = ensure_template()
    work_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, work_dir / f"{name}.sqlite")
    port = free_port()
    process = _start(CACHE / "venv", work_dir, name, port)
    url = f"http://127.0.0.1:{port}"
    wait_for(url)
    return TrytonServer(url, name, process)


class TrytonData:
    """Buyer-side actions in Tryton, as a buyer would do them in its client."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client
        c = client
        self.company = c.context["company"]
        self.currency = c.search_read("currency.currency", [("code", "=", "EUR")], ["id"])[0]["id"]
        self.unit = c.search_read("product.uom", [("symbol", "=", "u")], ["id"])[0]["id"]
        self.warehouse = c.search_read(
            "stock.location", [("type", "=", "warehouse")], ["id", "input_location", "storage_location"]
        )[0]

    def supplier(self, name: str) -> int:
        found = self.client.search_read("party.party", [("name", "=", name)], ["id"])
        if found:
            return int(found[0]["id"])
        return int(self.client.call("party.party", "create", [{"name": name, "addresses": [["create", [{}]]]}])[0])

    def product(self, code: str, name: str) -> int:
        found = self.client.search_read("product.product", [("code", "=", code)], ["id"])
        if found:
            return int(found[0]["id"])
        template = self.client.call(
            "product.template",
            "create",
            [
                {
                    "name": name,
                    "code": code,
                    "type": "goods",
                    "default_uom": self.unit,
                    "purchasable": True,
                    "purchase_uom": self.unit,
                    "products": [["create", [{}]]],
                }
            ],
        )
        return int(self.client.search_read("product.product", [("template", "=", template[0])], ["id"])[0]["id"])

    def purchase(
        self,
        supplier: str,
        lines: list[tuple[str, int, str, date]],
        *,
        confirm: bool = True,
        ordered: date | None = None,
    ) -> tuple[int, list[int]]:
        """A purchase of (product code, quantity, unit price, delivery date) lines; confirmed by default."""
        party = self.supplier(supplier)
        address = self.client.search_read("party.address", [("party", "=", party)], ["id"])[0]["id"]
        values: list[dict[str, Any]] = [
            {
                "type": "line",
                "product": self.product(code, f"Product {code}"),
                "quantity": quantity,
                "unit": self.unit,
                "unit_price": Decimal(price),
                "description": f"Product {code}",
                "delivery_date_edit": True,
                "delivery_date": delivery,
            }
            for code, quantity, price, delivery in lines
        ]
        purchase = self.client.call(
            "purchase.purchase",
            "create",
            [
                {
                    "party": party,
                    "company": self.company,
                    "currency": self.currency,
                    "warehouse": self.warehouse["id"],
                    "invoice_address": address,
                    "invoice_method": "manual",
                    "purchase_date": ordered or date.today(),
                    "lines": [["create", values]],
                }
            ],
        )[0]
        if confirm:
            self.client.call("purchase.purchase", "quote", [purchase])
            self.client.call("purchase.purchase", "confirm", [purchase])
        line_ids = self.client.search_read("purchase.purchase", [("id", "=", purchase)], ["lines"])[0]["lines"]
        return int(purchase), [int(i) for i in line_ids]

    def moves(self, line_id: int) -> list[dict[str, Any]]:
        return self.client.search_read(
            "stock.move",
            [("origin", "=", f"purchase.line,{line_id}")],
            ["state", "quantity", "planned_date", "effective_date"],
            order=[("id", "ASC")],
        )

    def open_moves(self, line_id: int) -> list[tuple[Decimal, date]]:
        return [
            (Decimal(str(m["quantity"])), m["planned_date"])
            for m in self.moves(line_id)
            if m["state"] in ("draft", "assigned", "staging")
        ]

    def note(self, line_id: int) -> str:
        return str(self.client.search_read("purchase.line", [("id", "=", line_id)], ["note"])[0]["note"] or "")

    def receive(self, move_ids: list[int], supplier: str, on: date, reference: str = "") -> None:
        """Receive moves in full on a shipment dated ``on`` (not in the future: Tryton refuses it), with the
        supplier shipment's ``reference`` as the receiving clerk types or scans it."""
        shipment = self.client.call(
            "stock.shipment.in",
            "create",
            [
                {
                    "reference": reference or None,
                    "supplier": self.supplier(supplier),
                    "warehouse": self.warehouse["id"],
                    "warehouse_input": self.warehouse["input_location"],
                    "warehouse_storage": self.warehouse["storage_location"],
                    "incoming_moves": [["add", move_ids]],
                }
            ],
        )
        self.client.call("stock.shipment.in", "write", shipment, {"effective_date": on})
        self.client.call("stock.shipment.in", "receive", shipment)
        self.client.call("stock.shipment.in", "do", shipment)
