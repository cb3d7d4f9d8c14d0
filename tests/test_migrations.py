"""The schema comes only from migrations: one head, and models match it (``alembic check``)."""

from __future__ import annotations

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


def test_snapshot_documents_become_columns_on_sqlite(tmp_path):
    _snapshot_documents_become_columns(f"sqlite:///{tmp_path / 'snapshots.sqlite3'}", [])


def test_snapshot_documents_become_columns_on_postgresql(scratch_pg_database):
    # The owner is subject to the forced row-level security too: work inside the tenant.
    _snapshot_documents_become_columns(scratch_pg_database, ["SELECT set_config('app.tenant_id', '1', false)"])
