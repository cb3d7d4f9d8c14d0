"""The schema comes only from migrations: one head, and models match it (``alembic check``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from portal.migrate import alembic_config


def test_single_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_models_match_migrations_on_postgresql(pg_database):
    # Raises when autogenerate would find a difference between models and the migrated schema.
    command.check(alembic_config(pg_database["owner"]))


def test_models_match_migrations_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'check.sqlite3'}"
    command.upgrade(alembic_config(url), "head")
    command.check(alembic_config(url))


def test_snapshot_columns_are_the_figures():
    from portal.scorecards.models import FIGURE_COLUMNS
    from portal.scorecards.services import FIGURE_FIELDS

    assert (*FIGURE_COLUMNS, "version") == FIGURE_FIELDS


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_database(request, tmp_path):  # type: ignore[no-untyped-def]
    """An empty database of each kind for a data migration's test: its URL, and the statements each connection
    runs first (the owner is subject to the forced row-level security too: it works inside the tenant)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}", []
    return request.getfixturevalue("scratch_pg_database"), ["SELECT set_config('app.tenant_id', '1', false)"]


def _snapshot_documents_become_columns(url: str, owner_setup: list[str]) -> None:
    """Snapshots stored as JSON documents (before 0011) keep their figures in the columns, and back."""
    from sqlalchemy import create_engine, text

    config = alembic_config(url)
    command.upgrade(config, "0010")
    engine = create_engine(url)
    document = ('{"deliveries": 4, "on_time": 75.0, "in_full": 50.0, "otif": 25.0, "fill_rate": 87.5, "orders": 3, '
                '"ack_rate": 66.66666666666667, "ack_hours": 12.5, "promise_kept": 100.0, "slip_days": null, '
                '"notice_days": null, "lead_error_days": 0.8, "documents": null, "score": 61.3, "grade": "D", '
                '"version": 2}')  # fmt: skip
    with engine.begin() as conn:
        for statement in owner_setup:
            conn.execute(text(statement))
        conn.execute(
            text(
                "INSERT INTO tenants (id, name, slug, mfa_policy, unconfirmed_after_days, "
                "ship_notice_lead_days, created_at) "
                "VALUES (1, 'T', 't', 'required_for_all', 3, 2, '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO suppliers (id, tenant_id, code, name, category, status, "
                "gating_override_reason, created_at) VALUES (5, 1, 'S', 'S', '', 'active', '', "
                "'2026-01-01')"
            )
        )
        conn.execute(text("INSERT INTO scorecard_snapshots (tenant_id, supplier_id, period, period_start, version, "
                          "figures, computed_at) VALUES (1, 5, 'month', '2026-01-01', 2, :doc, '2026-02-01')"),
                     {"doc": document})  # fmt: skip
    command.upgrade(config, "head")
    with engine.begin() as conn:
        for statement in owner_setup:
            conn.execute(text(statement))
        row = conn.execute(text("SELECT deliveries, otif, ack_rate, slip_days, score, grade, orders "
                                "FROM scorecard_snapshots")).one()  # fmt: skip
    assert tuple(row) == (4, 25.0, 66.66666666666667, None, 61.3, "D", 3)
    command.downgrade(config, "0010")
    with engine.begin() as conn:
        for statement in owner_setup:
            conn.execute(text(statement))
        back = conn.execute(text("SELECT figures FROM scorecard_snapshots")).scalar_one()
    back = back if isinstance(back, dict) else __import__("json").loads(back)
    assert back["otif"] == 25.0 and back["grade"] == "D" and back["slip_days"] is None and back["version"] == 2
    engine.dispose()


def test_snapshot_documents_become_columns(migrated_database):
    _snapshot_documents_become_columns(*migrated_database)


# A tenant with one supplier and one order (7), as raw rows, for the data migrations' tests.
ONE_ORDER = [
    "INSERT INTO tenants (id, name, slug, mfa_policy, unconfirmed_after_days, ship_notice_lead_days, created_at) "
    "VALUES (1, 'T', 't', 'required_for_all', 3, 2, '2026-01-01')",
    "INSERT INTO suppliers (id, tenant_id, code, name, category, status, gating_override_reason, created_at) "
    "VALUES (5, 1, 'S', 'S', '', 'active', '', '2026-01-01')",
    "INSERT INTO companies (id, tenant_id, code, name, created_at) VALUES (2, 1, 'C', 'C', '2026-01-01')",
    "INSERT INTO warehouses (id, tenant_id, company_id, code, name, city, created_at) "
    "VALUES (3, 1, 2, 'W', 'W', '', '2026-01-01')",
    "INSERT INTO purchase_orders (id, tenant_id, company_id, warehouse_id, supplier_id, number, currency, "
    "order_date, state, version, total_value, created_at, updated_at) "
    "VALUES (7, 1, 2, 3, 5, 'PO-7', 'EUR', '2026-01-02', 'confirmed', 1, 0, '2026-01-02', '2026-01-02')",
]


@contextmanager
def _as_owner(engine, owner_setup: list[str]) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A transaction of the owner, set up as its connections are (``migrated_database``)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        for statement in owner_setup:
            conn.execute(text(statement))
        yield conn


def _rows_after_upgrade(url: str, owner_setup: list[str], revision: str, rows: list[str], query: str) -> list:
    """Migrate to ``revision``, write ``rows`` as raw SQL, upgrade to head and return what ``query`` reads then
    (both under ``owner_setup``); the database is left at ``revision`` again."""
    from sqlalchemy import create_engine, text

    config = alembic_config(url)
    command.upgrade(config, revision)
    engine = create_engine(url)
    try:
        with _as_owner(engine, owner_setup) as conn:
            for statement in rows:
                conn.execute(text(statement))
        command.upgrade(config, "head")
        with _as_owner(engine, owner_setup) as conn:
            found = conn.execute(text(query)).all()
        command.downgrade(config, revision)
    finally:
        engine.dispose()
    return list(found)


def _lines_get_their_promise_dates(url: str, owner_setup: list[str]) -> None:
    """Lines answered before 0014 get the earliest and latest dates of their active deliveries (an inactive,
    replaced delivery does not count); unanswered lines none."""
    rows = [
        *ONE_ORDER,
        *(
            "INSERT INTO purchase_order_lines (id, tenant_id, order_id, supplier_id, position, product_code, "
            "product_name, quantity, unit, unit_price, requested_date, received_quantity, shipped_quantity, state) "
            f"VALUES ({line}, 1, 7, 5, {line}, 'P', 'P', 10, 'pc', 1, '2026-02-01', 0, 0, '{state}')"
            for line, state in ((11, "confirmed"), (12, "awaiting_response"))
        ),
        *(
            "INSERT INTO delivery_schedules (tenant_id, line_id, supplier_id, position, quantity, promised_date, "
            f"first_promised_date, active) VALUES (1, 11, 5, {position}, 5, '{day}', '{day}', {active})"
            for position, day, active in (
                (1, "2026-01-20", "false"),
                (2, "2026-02-05", "true"),
                (3, "2026-03-09", "true"),
            )
        ),
    ]
    found = _rows_after_upgrade(
        url, owner_setup, "0013", rows, "SELECT id, promised_from, promised_to FROM purchase_order_lines ORDER BY id"
    )
    assert [
        (line, str(start)[:10] if start else None, str(end)[:10] if end else None) for line, start, end in found
    ] == [
        (11, "2026-02-05", "2026-03-09"),
        (12, None, None),
    ]


def test_lines_get_their_promise_dates(migrated_database):
    _lines_get_their_promise_dates(*migrated_database)


def _deliveries_get_their_outcomes(url: str, owner_setup: list[str]) -> None:
    """Deliveries made before 0016 get what arrived against them: a line's receipts set against its active
    deliveries in date order; of a cancelled line, only what arrived counts; a replaced delivery is left as
    "nothing arrived"."""
    line_columns = (
        "id, tenant_id, order_id, supplier_id, position, product_code, product_name, quantity, unit, unit_price, "
        "requested_date, received_quantity, shipped_quantity, state"
    )
    rows = [
        *ONE_ORDER,
        *(
            f"INSERT INTO purchase_order_lines ({line_columns}) "
            f"VALUES ({line}, 1, 7, 5, {line}, 'P', 'P', 10, 'pc', 1, '2026-02-01', {received}, 0, '{state}')"
            for line, received, state in ((11, 11, "partially_received"), (12, 0, "confirmed"), (13, 3, "cancelled"))
        ),
        *(
            "INSERT INTO delivery_schedules (id, tenant_id, line_id, supplier_id, position, quantity, promised_date, "
            f"first_promised_date, active) VALUES ({id}, 1, {line}, 5, {position}, {quantity}, '{day}', '{day}', "
            f"{active})"
            for id, line, position, quantity, day, active in (
                (21, 11, 1, 5, "2026-01-20", "false"),
                (22, 11, 2, 5, "2026-02-05", "true"),
                (23, 11, 3, 5, "2026-03-09", "true"),
                (24, 12, 1, 10, "2026-02-01", "true"),
                (25, 13, 1, 10, "2026-02-10", "true"),
            )
        ),
        *(
            "INSERT INTO receipts (tenant_id, line_id, quantity, received_on, source, created_at) "
            f"VALUES (1, {line}, {quantity}, '{day}', 'erp', '2026-01-02')"
            for line, quantity, day in ((11, 4, "2026-03-01"), (11, 7, "2026-02-06"), (13, 3, "2026-02-12"))
        ),
    ]
    found = _rows_after_upgrade(
        url, owner_setup, "0015", rows,
        "SELECT id, counted_quantity, delivered_quantity, first_arrival_on, completed_on FROM delivery_schedules "
        "ORDER BY id",
    )  # fmt: skip

    def day(value: object) -> str | None:
        return str(value)[:10] if value else None

    assert [
        (id, float(counted), float(delivered), day(first), day(done)) for id, counted, delivered, first, done in found
    ] == [
        (21, 5.0, 0.0, None, None),
        (22, 5.0, 5.0, "2026-02-06", "2026-02-06"),
        (23, 5.0, 5.0, "2026-02-06", "2026-03-01"),
        (24, 10.0, 0.0, None, None),
        (25, 3.0, 3.0, "2026-02-12", "2026-02-12"),
    ]


def test_deliveries_get_their_outcomes(migrated_database):
    _deliveries_get_their_outcomes(*migrated_database)


def test_notice_lines_sent_before_keep_what_arrived_of_them(migrated_database):
    """0037: the lines of received notices have all arrived; those of notices on their way get the receipts
    recorded so far, matched as the portal matches them (first in, first out by ship date, not before a notice
    was shipped); a cancelled notice's lines get nothing."""
    url, owner_setup = migrated_database
    line_columns = (
        "id, tenant_id, order_id, supplier_id, position, product_code, product_name, quantity, unit, unit_price, "
        "requested_date, received_quantity, shipped_quantity, state"
    )
    rows = [
        *ONE_ORDER,
        *(
            f"INSERT INTO purchase_order_lines ({line_columns}) "
            f"VALUES ({line}, 1, 7, 5, {line}, 'P', 'P', 10, 'pc', 1, '2026-02-01', {received}, {shipped}, 'shipped')"
            for line, received, shipped in ((11, 7, 8), (12, 10, 10))
        ),
        *(
            "INSERT INTO ship_notices (id, tenant_id, order_id, supplier_id, number, ship_date, expected_arrival, "
            f"carrier, tracking_number, packing_slip, state, created_at) VALUES ({id}, 1, 7, 5, 'PO-7-ASN{id}', "
            f"'{day}', '{day}', '', '', '', '{state}', '2026-01-02')"
            for id, day, state in (
                (31, "2026-02-01", "sent"),
                (32, "2026-02-05", "sent"),
                (33, "2026-02-01", "received"),
                (34, "2026-01-10", "cancelled"),
            )
        ),
        *(
            f"INSERT INTO ship_notice_lines (id, tenant_id, notice_id, line_id, quantity) "
            f"VALUES ({id}, 1, {notice}, {line}, {quantity})"
            for id, notice, line, quantity in ((41, 31, 11, 4), (42, 32, 11, 4), (43, 33, 12, 10), (44, 34, 11, 2))
        ),
        *(
            "INSERT INTO receipts (tenant_id, line_id, quantity, received_on, source, created_at) "
            f"VALUES (1, {line}, {quantity}, '{day}', 'erp', '2026-01-02')"
            for line, quantity, day in (
                (11, 1, "2026-01-15"),
                (11, 3, "2026-02-03"),
                (11, 3, "2026-02-06"),
                (12, 10, "2026-02-03"),
            )
        ),
    ]
    found = _rows_after_upgrade(
        url, owner_setup, "0036", rows, "SELECT id, received_quantity FROM ship_notice_lines ORDER BY id"
    )
    # The receipt of 2026-01-15 came before either notice was shipped; the one of 2026-02-06 fills notice 31
    # and brings 2 of notice 32.
    assert [(id, float(arrived)) for id, arrived in found] == [(41, 4.0), (42, 2.0), (43, 10.0), (44, 0.0)]


def test_orders_reminded_before_counts_were_kept_count_one_reminder(migrated_database):
    url, owner_setup = migrated_database
    reminded = (
        "INSERT INTO purchase_orders (id, tenant_id, company_id, warehouse_id, supplier_id, number, currency, "
        "order_date, state, version, total_value, reminded_at, created_at, updated_at) VALUES (8, 1, 2, 3, 5, "
        "'PO-8', 'EUR', '2026-01-02', 'awaiting_response', 1, 0, '2026-01-06', '2026-01-02', '2026-01-02')"
    )
    found = _rows_after_upgrade(
        url, owner_setup, "0020", [*ONE_ORDER, reminded],
        "SELECT id, reminder_count FROM purchase_orders ORDER BY id",
    )  # fmt: skip
    assert [tuple(row) for row in found] == [(7, 0), (8, 1)]


def test_going_down_and_up_keeps_every_row(migrated_database):
    """Down to the documents' revision and back: on SQLite, batch mode makes tables such as ``tenants`` and
    ``purchase_orders`` again; with foreign keys enforced, dropping them deleted or refused the rows that refer to
    them. The migrations run with them off, and check them after."""
    from sqlalchemy import create_engine, text

    url, owner_setup = migrated_database
    config = alembic_config(url)
    command.upgrade(config, "head")
    engine = create_engine(url)
    count = "SELECT (SELECT count(*) FROM suppliers), (SELECT count(*) FROM purchase_orders)"
    try:
        with _as_owner(engine, owner_setup) as conn:
            for statement in ONE_ORDER:
                conn.execute(text(statement))
        command.downgrade(config, "0003")
        with _as_owner(engine, owner_setup) as conn:
            assert tuple(conn.execute(text(count)).one()) == (1, 1)
        command.upgrade(config, "head")
        with _as_owner(engine, owner_setup) as conn:
            assert tuple(conn.execute(text(count)).one()) == (1, 1)
            assert conn.execute(text("SELECT remind_unconfirmed FROM tenants")).scalar_one() in (True, 1)
    finally:
        engine.dispose()
