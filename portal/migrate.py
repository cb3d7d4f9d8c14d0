"""Run Alembic from code (CLI, start-up scripts, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from portal.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    if settings.database_owner_url.startswith("sqlite:///"):
        Path(settings.database_owner_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_owner_url), revision)
