"""Command-line administration: ``flask --app wsgi <command>``."""

from __future__ import annotations

import re
import sys
from functools import partial

import click
import pyotp
from flask import Flask, current_app
from sqlalchemy import select

from portal import audit
from portal.auth import services
from portal.auth.models import Membership
from portal.auth.passwords import password_problem
from portal.auth.permissions import Role
from portal.db import Database, set_context
from portal.formatting import counted
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant
from portal.web import secret_key

CLI_ACTOR = services.Actor(None, "cli", "")


def _db() -> Database:
    return current_app.extensions["portal.db"]


def _tenant(session, slug: str) -> Tenant:
    tenant = session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise click.ClickException(f"no tenant with slug {slug!r}")
    return tenant


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "tenant"


def register_cli(app: Flask) -> None:
    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Bring the database schema to the newest migration (runs as DATABASE_OWNER_URL)."""
        from portal.migrate import upgrade

        upgrade(current_app.extensions["portal.settings"])
        click.echo("schema is at head")

    @app.cli.command("create-tenant")
    @click.argument("name")
    @click.option("--slug", help="Short unique name; derived from NAME when left out.")
    def create_tenant(name: str, slug: str | None) -> None:
        """Create a buying organisation."""
        slug = slug or _slugify(name)
        with _db().transaction() as session:
            if session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none():
                raise click.ClickException(f"tenant {slug!r} exists already")
            tenant = Tenant(name=name, slug=slug)
            session.add(tenant)
            session.flush()
            set_context(session, tenant_id=tenant.id)
            CLI_ACTOR.audit(
                session,
                "tenant.created",
                tenant_id=tenant.id,
                object_type="tenant",
                object_id=tenant.id,
                after={"name": name, "slug": slug},
            )
        click.echo(f"tenant {slug} created (id {tenant.id})")

    @app.cli.command("create-user")
    @click.argument("email")
    @click.option("--tenant", "tenant_slug", required=True)
    @click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.TENANT_ADMIN.value)
    @click.option("--name", default="")
    @click.option("--supplier", "supplier_code", help="Supplier code, for supplier roles.")
    @click.password_option(prompt="Password (they enrol MFA at first sign-in)")
    def create_user(
        email: str, tenant_slug: str, role: str, name: str, supplier_code: str | None, password: str
    ) -> None:
        """Create a user with a password and give them a role (typically the first tenant admin)."""
        problem = password_problem(password, user_inputs=(email, name))
        if problem:
            raise click.ClickException(problem)
        with _db().transaction() as session:
            tenant = _tenant(session, tenant_slug)
            set_context(session, tenant_id=tenant.id)
            supplier_id = _supplier_id(session, tenant.id, Role(role), supplier_code)
            user = services.find_user_by_email(session, email) or services.create_user(
                session, email, name=name, password=password
            )
            session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=Role(role), supplier_id=supplier_id))
            session.flush()
            CLI_ACTOR.audit(
                session,
                "membership.created",
                tenant_id=tenant.id,
                object_type="user",
                object_id=user.id,
                after={"email": user.email, "role": role, "supplier_id": supplier_id},
            )
        click.echo(f"{email} is {role} in {tenant_slug}; MFA enrolment happens at first sign-in")

    @app.cli.command("invite")
    @click.argument("email")
    @click.option("--tenant", "tenant_slug", required=True)
    @click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
    @click.option("--supplier", "supplier_code", help="Supplier code, for supplier roles.")
    def invite(email: str, tenant_slug: str, role: str, supplier_code: str | None) -> None:
        """Invite someone; prints the link (it is also e-mailed)."""
        from flask import url_for

        from portal.mail import send_email

        with (
            _db().transaction() as session,
            current_app.test_request_context(base_url=current_app.extensions["portal.settings"].base_url),
        ):
            tenant = _tenant(session, tenant_slug)
            set_context(session, tenant_id=tenant.id)
            supplier_id = _supplier_id(session, tenant.id, Role(role), supplier_code)
            try:
                invitation = services.create_invitation(
                    session,
                    tenant_id=tenant.id,
                    inviter_role=None,
                    email=email,
                    role=Role(role),
                    supplier_id=supplier_id,
                    actor=CLI_ACTOR,
                )
            except services.ServiceError as exc:
                raise click.ClickException(exc.message) from exc
            link = url_for("auth.invitation", token=services.invitation_token(secret_key(), invitation), _external=True)
            send_email(
                session,
                invitation.email,
                f"You are invited to the supplier portal of {tenant.name}",
                f"Accept the invitation here (the link works once, for 7 days):\n{link}\n",
            )
        click.echo(link)

    @app.cli.command("import-orders")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--tenant", "tenant_slug", required=True)
    def import_orders_command(path: str, tenant_slug: str) -> None:
        """Import purchase orders from a CSV file (all or nothing; errors name their rows)."""
        from pathlib import Path

        from portal.orders import intake

        rows, problems = intake.read_csv(Path(path).read_bytes())
        if problems:
            raise click.ClickException(" ".join(problems))
        with _db().transaction() as session:
            tenant = _tenant(session, tenant_slug)
            set_context(session, tenant_id=tenant.id)
            result = intake.import_orders(session, tenant_id=tenant.id, rows=rows, actor=CLI_ACTOR, buyer_id=None)
            if result.errors:
                for error in result.errors:
                    click.echo(error, err=True)
                failed = counted(len(result.errors), "row has", "rows have")
                raise click.ClickException(f"nothing imported: {failed} problems")
        orders = counted(len(result.orders), "order", "orders")
        click.echo(f"{orders} with {counted(result.lines, 'line', 'lines')} imported")

    @app.cli.command("documents-expiry")
    @click.option("--today", "today_text", help="Run as of this date (YYYY-MM-DD); default today.")
    def documents_expiry(today_text: str | None) -> None:
        """Expire documents and send due reminders, for every tenant (daily; idempotent)."""
        from datetime import date

        from portal.documents.services import run_expiry

        today = date.fromisoformat(today_text) if today_text else date.today()
        with _db().transaction() as session:
            tenant_ids = list(session.execute(select(Tenant.id).order_by(Tenant.id)).scalars())
        for tenant_id in tenant_ids:
            with current_app.test_request_context(), _db().transaction(tenant_id=tenant_id) as session:
                result = run_expiry(session, tenant_id=tenant_id, today=today)
            reminders = counted(result.reminders, "reminder", "reminders")
            click.echo(f"tenant {tenant_id}: {result.expired} expired, {reminders}")

    @app.cli.command("scorecards-recompute")
    @click.option("--months", default=24, show_default=True, help="How many closed months to (re)build.")
    @click.option("--today", "today_text", help="Run as of this date (YYYY-MM-DD); default today.")
    def scorecards_recompute(months: int, today_text: str | None) -> None:
        """Store the figures of closed months and quarters for every supplier (idempotent)."""
        import time
        from datetime import date

        from portal.scorecards.services import recompute

        today = date.fromisoformat(today_text) if today_text else date.today()
        with _db().transaction() as session:
            tenant_ids = list(session.execute(select(Tenant.id).order_by(Tenant.id)).scalars())
        for tenant_id in tenant_ids:
            started = time.perf_counter()
            with _db().transaction(tenant_id=tenant_id) as session:
                reader = partial(_db().transaction, tenant_id=tenant_id)
                stored = recompute(session, tenant_id=tenant_id, months=months, today=today, reader=reader)
            seconds = time.perf_counter() - started
            click.echo(f"tenant {tenant_id}: {counted(stored, 'snapshot', 'snapshots')} in {seconds:.1f} s")

    @app.cli.command("delivery-outcomes")
    def delivery_outcomes() -> None:
        """Fold every line's receipts into its deliveries again (after deliveries or receipts were loaded with
        plain SQL, outside the portal, which folds them as it writes them)."""
        from portal.orders.outcomes import refresh

        with _db().transaction() as session:
            tenant_ids = list(session.execute(select(Tenant.id).order_by(Tenant.id)).scalars())
        for tenant_id in tenant_ids:
            with _db().transaction(tenant_id=tenant_id) as session:
                written = refresh(session, tenant_id=tenant_id)
            click.echo(f"tenant {tenant_id}: {counted(written, 'delivery', 'deliveries')}")

    @app.cli.command("audit-verify")
    def audit_verify() -> None:
        """Recompute every audit hash chain; exit 1 naming the first broken row."""
        with _db().transaction() as session:
            tenant_ids = list(session.execute(select(Tenant.id).order_by(Tenant.id)).scalars())
            results = audit.verify_chains(session, tenant_ids)
        broken = False
        for result in results:
            if result.ok:
                click.echo(f"{result.chain_key}: ok ({result.rows} rows)")
            else:
                broken = True
                click.echo(
                    f"{result.chain_key}: BROKEN at row id {result.first_broken_id} "
                    f"(seq {result.first_broken_seq}): {result.problem}"
                )
        sys.exit(1 if broken else 0)

    @app.cli.command("demo")
    def demo() -> None:
        """Seed the demo distributors and print their sign-ins (demo mode only)."""
        from portal.demo import DEMO_PASSWORD, seed_demo

        settings = current_app.extensions["portal.settings"]
        if settings.is_production or not settings.demo_mode:
            raise click.ClickException("demo data is only for the embedded or development mode")
        from portal.documents.views import storage

        with _db().transaction() as session:
            users = seed_demo(session, storage())
        click.echo("")
        click.echo(f"Demo sign-ins (password for all: {DEMO_PASSWORD})")
        click.echo("Add the TOTP secret to an authenticator app, or print a current code with")
        click.echo("  flask --app wsgi totp EMAIL")
        for email, role, secret in users:
            click.echo(f"  {email:<34} {role:<44} TOTP secret {secret}")

    @app.cli.command("totp")
    @click.argument("email")
    def totp(email: str) -> None:
        """Print the current TOTP code of a demo user (demo mode only)."""
        settings = current_app.extensions["portal.settings"]
        if settings.is_production or not settings.demo_mode:
            raise click.ClickException("only in demo mode")
        with _db().transaction() as session:
            user = services.find_user_by_email(session, email)
            if user is None or not user.is_demo or not user.totp_secret:
                raise click.ClickException("not a demo user")
            click.echo(pyotp.TOTP(user.totp_secret).now())


def _supplier_id(session, tenant_id: int, role: Role, supplier_code: str | None) -> int | None:
    if not role.is_supplier_role:
        return None
    if not supplier_code:
        raise click.ClickException("supplier roles need --supplier CODE")
    supplier = session.execute(
        select(Supplier).where(Supplier.tenant_id == tenant_id, Supplier.code == supplier_code.upper())
    ).scalar_one_or_none()
    if supplier is None:
        raise click.ClickException(f"no supplier {supplier_code!r} in this tenant")
    return supplier.id
