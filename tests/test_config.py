from __future__ import annotations

import pytest

from portal.config import ConfigError, load_settings


def test_embedded_default_needs_nothing(tmp_path):
    settings = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path)})
    assert settings.env == "embedded"
    assert settings.database_url == f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    assert settings.mail_backend == "database" and settings.redis_url is None
    assert len(settings.secret_key) >= 32
    # The generated secret is kept, so sessions survive a restart.
    assert load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path)}).secret_key == settings.secret_key


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without(missing, tmp_path):
    env = {
        "PORTAL_ENV": "production",
        "SECRET_KEY": "x" * 40,
        "DATABASE_URL": "postgresql://portal_app@db/portal",
        "REDIS_URL": "redis://cache:6379/0",
        "PORTAL_INSTANCE_PATH": str(tmp_path),
    }
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_production_refuses_sqlite_and_short_secrets(tmp_path):
    base = {"PORTAL_ENV": "production", "REDIS_URL": "redis://c", "PORTAL_INSTANCE_PATH": str(tmp_path)}
    with pytest.raises(ConfigError, match="PostgreSQL"):
        load_settings({**base, "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="32"):
        load_settings({**base, "SECRET_KEY": "short", "DATABASE_URL": "postgresql://a@b/c"})


def test_production_cookies_are_secure_and_host_prefixed(tmp_path):
    settings = load_settings(
        {
            "PORTAL_ENV": "production",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": "postgres://a@b/c",
            "REDIS_URL": "redis://c",
            "PORTAL_INSTANCE_PATH": str(tmp_path),
        }
    )
    config = settings.flask_config()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert config["SESSION_COOKIE_NAME"] == "__Host-portal"
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    assert config["SESSION_COOKIE_HTTPONLY"] and config["REMEMBER_COOKIE_HTTPONLY"]
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax" and config["REMEMBER_COOKIE_SAMESITE"] == "Lax"


def test_no_process_pings_its_pooled_connections_unless_asked(monkeypatch, tmp_path, pg_database):
    """Neither a web process nor a worker process pings each pooled connection before use (a round trip on
    every request and two per event): a look at the socket finds the connections the server closed. Where
    connections may be dropped silently, DATABASE_PRE_PING=1 turns the ping on."""
    from workers import context

    web = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": pg_database["app"]})
    assert web.database_pre_ping is False
    asked = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_PRE_PING": "1"})
    assert asked.database_pre_ping is True
    monkeypatch.setenv("PORTAL_ENV", "test")
    monkeypatch.setenv("PORTAL_WORKERS", "external")
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
    monkeypatch.setenv("DATABASE_URL", pg_database["app"])
    previous = context._app
    try:
        for asked_for, expected in ((None, False), ("1", True)):
            if asked_for is None:
                monkeypatch.delenv("DATABASE_PRE_PING", raising=False)
            else:
                monkeypatch.setenv("DATABASE_PRE_PING", asked_for)
            context.bind(None)
            assert context.database().engine.pool._pre_ping is expected
    finally:
        context.bind(previous)


def test_per_request_library_chatter_stays_out_of_the_log(caplog):
    """One line per ERP request or per PDF layout step would drown what matters; warnings still show."""
    import logging

    from portal.logsafe import configure_logging

    configure_logging()
    with caplog.at_level(logging.INFO):
        for name in ("httpx", "weasyprint.progress"):
            logging.getLogger(name).info("step done")
            logging.getLogger(name).warning("something is off")
    assert [r.getMessage() for r in caplog.records] == ["something is off", "something is off"]
