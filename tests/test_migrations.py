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
