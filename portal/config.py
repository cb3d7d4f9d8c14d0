"""Configuration, read once from environment variables.

With nothing set the portal runs in the *embedded* mode: a SQLite file in the
instance folder, e-mails kept in the database (and logged) so a person can read
them, rate limits held in memory. ``PORTAL_ENV=production`` switches to the
production mode, which refuses to start without ``SECRET_KEY``, a PostgreSQL
``DATABASE_URL`` and ``REDIS_URL``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


class ConfigError(RuntimeError):
    """Raised at start-up when the environment does not describe a safe portal."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    env: str
    secret_key: str
    database_url: str
    database_owner_url: str
    redis_url: str | None
    instance_path: Path
    mail_backend: str  # "database" (embedded) or "smtp"
    mail_from: str
    smtp_host: str
    smtp_port: int
    smtp_timeout: float
    trusted_proxy_hops: int
    secure_cookies: bool
    base_url: str
    demo_mode: bool
    # Actors and periodic jobs run inside the web process (embedded mode) or in
    # their own processes (``dramatiq workers.actors`` and ``python -m workers.scheduler``).
    workers_in_process: bool = False
    # Fernet key for ERP and webhook secrets; derived from SECRET_KEY when unset.
    credentials_key: str = ""
    # Seconds an ERP call may take (below the workers' 55 s time limit).
    erp_timeout: float = 20.0
    # clamd for uploads ("host:port" or "unix:/path"); empty: no virus scan.
    clamd_address: str = ""
    # Webhooks to loopback, private and link-local addresses (refused in production: SSRF).
    webhook_allow_private: bool = False
    # Ping each pooled PostgreSQL connection before use (a round trip per checkout). Off by default: a pooled
    # connection's socket is looked at instead, which finds every connection the server closed (``make_engine``).
    database_pre_ping: bool = False
    database_prepare: bool = True
    # Supplier API calls one key may make a minute (beyond: 429 with Retry-After).
    api_calls_per_minute: int = 600
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def flask_config(self) -> dict[str, object]:
        """Flask's own keys, derived from the settings."""
        cookie_name = "__Host-portal" if self.secure_cookies else "portal_session"
        return {
            "SECRET_KEY": self.secret_key,
            "SESSION_COOKIE_NAME": cookie_name,
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_PATH": "/",
            # The cookie may live 12 h at most; idle and absolute limits are
            # enforced server-side on the session record (portal.auth.sessions).
            "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
            # So the cookie is not re-signed and re-sent on every response: it expires 12 h after sign-in,
            # the session record's absolute limit anyway (it is sent again whenever its content changes).
            "SESSION_REFRESH_EACH_REQUEST": False,
            # We never issue a remember cookie, but its defaults are unsafe, so
            # pin them in case a later change does.
            "REMEMBER_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "REMEMBER_COOKIE_DURATION": timedelta(hours=12),
            "WTF_CSRF_TIME_LIMIT": 3600 * 12,
            "WTF_CSRF_SSL_STRICT": self.secure_cookies,
            # Uploads larger than this answer 413 before any view runs.
            "MAX_CONTENT_LENGTH": 20 * 1024 * 1024,
            "PREFERRED_URL_SCHEME": "https" if self.secure_cookies else "http",
        }


def load_settings(env: dict[str, str] | None = None, instance_path: Path | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    mode = env.get("PORTAL_ENV", "embedded").strip().lower()
    if mode not in {"embedded", "development", "production", "test"}:
        raise ConfigError(f"PORTAL_ENV must be embedded, development, test or production, got {mode!r}")
    instance = Path(env.get("PORTAL_INSTANCE_PATH") or instance_path or Path.cwd() / "instance")

    if mode == "production":
        missing = [k for k in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL") if not env.get(k)]
        if missing:
            raise ConfigError("production mode needs " + ", ".join(missing))
        if not _normalise_db_url(env["DATABASE_URL"]).startswith("postgresql"):
            raise ConfigError("production mode needs a PostgreSQL DATABASE_URL")
        if len(env["SECRET_KEY"]) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters")

    secret = env.get("SECRET_KEY") or _embedded_secret(instance)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'portal.sqlite3'}"
    database_url = _normalise_db_url(database_url)
    owner_url = _normalise_db_url(env.get("DATABASE_OWNER_URL") or database_url)
    secure_default = mode == "production"
    return Settings(
        env=mode,
        secret_key=secret,
        database_url=database_url,
        database_owner_url=owner_url,
        redis_url=env.get("REDIS_URL") or None,
        instance_path=instance,
        mail_backend=env.get("MAIL_BACKEND") or ("smtp" if env.get("SMTP_HOST") else "database"),
        mail_from=env.get("MAIL_FROM", "Supplier Portal <no-reply@portal.localhost>"),
        smtp_host=env.get("SMTP_HOST", "localhost"),
        smtp_port=_int(env, "SMTP_PORT", 25),
        smtp_timeout=float(env.get("SMTP_TIMEOUT", "10")),
        trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 0),
        secure_cookies=_bool(env.get("SECURE_COOKIES"), secure_default),
        base_url=env.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        demo_mode=_bool(env.get("PORTAL_DEMO"), mode in {"embedded", "development"}),
        workers_in_process=_workers_in_process(env, mode),
        credentials_key=env.get("CREDENTIALS_KEY", ""),
        erp_timeout=min(float(env.get("ERP_TIMEOUT", "20")), 45.0),
        clamd_address=env.get("CLAMD_ADDRESS", "").strip(),
        webhook_allow_private=_bool(env.get("WEBHOOK_ALLOW_PRIVATE"), mode != "production"),
        database_pre_ping=_bool(env.get("DATABASE_PRE_PING"), False),
        database_prepare=_bool(env.get("DATABASE_PREPARE"), True),
        api_calls_per_minute=max(1, _int(env, "API_CALLS_PER_MINUTE", 600)),
    )


def _workers_in_process(env: dict[str, str], mode: str) -> bool:
    raw = env.get("PORTAL_WORKERS", "").strip().lower()
    if raw not in {"", "in-process", "external"}:
        raise ConfigError(f"PORTAL_WORKERS must be in-process or external, got {raw!r}")
    if raw:
        return raw == "in-process"
    # Without Redis there is no queue another process could read: run them here.
    return mode != "test" and not env.get("REDIS_URL")


def _normalise_db_url(url: str) -> str:
    # Accept the common postgres:// spellings and always use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _embedded_secret(instance: Path) -> str:
    """A per-installation secret for the embedded mode, kept in the instance folder."""
    instance.mkdir(parents=True, exist_ok=True)
    key_file = instance / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()
