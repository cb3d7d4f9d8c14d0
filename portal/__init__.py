"""Supplier collaboration portal: the application factory."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from flask import Flask, Response, abort, request
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from markupsafe import Markup
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map
from werkzeug.security import safe_join

from portal.config import Settings, load_settings
from portal.db import MAX_ROW_ID, Database
from portal.logsafe import configure_logging

csrf = CSRFProtect()
login_manager = LoginManager()


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a whole number a BIGINT column can hold, else the address matches nothing."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(url_map, *args, **kwargs)


# How long a browser keeps a static file asked for by its content's digest: a year, the longest that caches honour.
STATIC_MAX_AGE = 365 * 24 * 3600


class PortalFlask(Flask):
    """Flask whose layout links its static files by content (``/static/app.css?v=<digest>``), served as immutable
    at that address: after the first page, the stylesheet, script and icon cost no request at all, where each page
    used to ask for the first two again (answered 304). A new release changes the digest, so the address. An
    address with an old or no digest is still served, for the browser to check again next time.

    Three files do not call for an asset pipeline (a build step and a manifest to deploy); the digests are taken
    from the files as they are on disk, once per file version."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Digests by (file, modification time, size): a file changed on disk gets a new one.
        self._static_digests: dict[tuple[str, int, int], str] = {}

    def static_digest(self, filename: str) -> str:
        """The first 12 hex digits of the SHA-256 of the static file ``filename`` (a path inside the folder)."""
        path = safe_join(self.static_folder or "", filename)
        if path is None:
            return ""
        try:
            stat = os.stat(path)
        except OSError:
            return ""
        key = (filename, stat.st_mtime_ns, stat.st_size)
        digest = self._static_digests.get(key)
        if digest is None:
            with open(path, "rb") as file:
                digest = self._static_digests[key] = hashlib.sha256(file.read()).hexdigest()[:12]
        return digest

    def send_static_file(self, filename: str) -> Response:
        response = super().send_static_file(filename)
        version = request.args.get("v")
        if version and version == self.static_digest(filename):
            response.cache_control.no_cache = None
            response.cache_control.public = True
            response.cache_control.max_age = STATIC_MAX_AGE
            response.cache_control.immutable = True
        return response


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    settings = settings or load_settings()
    app = PortalFlask(__name__, instance_path=str(settings.instance_path.resolve()), instance_relative_config=False)
    # "/orders/" typed or pasted opens the same page as "/orders" (before any route is added: each rule takes it).
    app.url_map.strict_slashes = False
    # Ids in addresses are the tables' BIGINTs: one beyond their range is nobody's (404), not a database error.
    app.url_map.converters["int"] = RowIdConverter
    app.config.update(settings.flask_config())
    app.config["PORTAL_NAME"] = "Supplier Portal"
    app.extensions["portal.settings"] = settings
    app.extensions["portal.db"] = database or Database(
        settings.database_url, pre_ping=settings.database_pre_ping, prepare=settings.database_prepare
    )
    configure_logging()

    if settings.trusted_proxy_hops:
        # Only the configured number of proxy hops is trusted for the client address.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxy_hops,
            x_proto=settings.trusted_proxy_hops,
            x_host=settings.trusted_proxy_hops,
        )

    from portal.auth.ratelimit import RateLimiter

    app.extensions["portal.ratelimiter"] = RateLimiter(settings.redis_url)

    csrf.init_app(app)
    _init_login(app)

    from portal import web

    web.init_app(app)
    _register_domains(app, settings)
    _enforce_access_declarations(app)
    _template_helpers(app)

    from portal.cli import register_cli

    register_cli(app)
    _start_workers(app, settings)
    return app


def _start_workers(app: Flask, settings: Settings) -> None:
    # Importing the actors installs the outbox's publisher (the queue) for this process.
    import workers.actors  # noqa: F401

    if settings.workers_in_process:
        from workers import inprocess

        # Started by the first request, so CLI commands (migrations, the demo seed) never
        # run jobs while they work.
        @app.before_request
        def _start_in_process_workers() -> None:
            inprocess.start(app)


def _init_login(app: Flask) -> None:
    from portal.web import load_signed_in_user

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    # Our server-side session records do the protecting; flask-login's IP/UA
    # hash would only log out people whose mobile network changed address.
    login_manager.session_protection = None

    # The tenant chosen earlier, and the person's memberships, ride along with the session record's lookup.
    login_manager.user_loader(load_signed_in_user)


def _register_domains(app: Flask, settings: Settings) -> None:
    from portal import api, dashboard, documents, erp, exports, notifications, orders, scorecards, suppliers
    from portal.auth import account_views, admin_views
    from portal.auth import views as auth_views

    modules = (auth_views, account_views, admin_views, dashboard, suppliers, orders, documents, scorecards)
    for module in (*modules, erp, notifications, exports, api):
        module.register(app)
    if settings.demo_mode and settings.mail_backend == "database" and not settings.is_production:
        from portal import devmail

        app.register_blueprint(devmail.bp)


def _enforce_access_declarations(app: Flask) -> None:
    """Fail closed: an endpoint whose view declares no access rule answers 404."""
    from portal.auth.access import Access, _mark, view_access

    _mark(app.view_functions["static"], Access("public"))

    @app.before_request
    def _require_declaration() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if view is not None and view_access(view) is None:
            app.logger.error("endpoint %s has no access declaration; refused", request.endpoint)
            abort(404)


def _template_helpers(app: PortalFlask) -> None:
    from portal.auth.permissions import Permission
    from portal.formatting import counted, money, price, quantity
    from portal.notifications.services import bell_label
    from portal.orders.forms import delivery_rows
    from portal.orders.rows import delivery_inputs
    from portal.web import active_memberships, db_session, portal_context, unread_notifications_read_with_memberships

    app.add_template_filter(quantity, "qty")
    app.add_template_filter(money, "money")
    app.add_template_filter(price, "price")
    app.add_template_filter(counted, "counted")
    app.add_template_global(delivery_rows)
    app.add_template_global(delivery_inputs)
    app.add_template_global(bell_label)

    main_navs: dict[tuple[Any, ...], Markup] = {}

    @app.template_global()
    def main_nav() -> Markup:
        """The main navigation of this page. It depends only on the role and the page (which links the role may
        follow, which one is current), so each combination is rendered once: rendering it took 0.7 ms, about
        a tenth of a list page's own work."""
        context = portal_context()
        if context is None:
            return Markup("")
        key = (context.role, context.is_supplier, request.endpoint, request.script_root)
        html = main_navs.get(key)
        if html is None:
            template = app.jinja_env.get_template("_mainnav.html")  # an .html template: autoescaped
            rendered = template.render(ctx=context, request=request, Permission=Permission)
            html = main_navs[key] = Markup(rendered)  # noqa: S704 (escaped by the template)
        return html

    constant_urls: dict[tuple[Any, ...], str] = {}

    @app.template_global()
    def constant_url(endpoint: str, **values: Any) -> str:
        """``url_for`` for a link that is the same on every page (the layout's: stylesheet, script, account,
        sign-out...), made once per script root. Only for constant arguments written in a template, never for
        values from a request (each new one would stay here). The layout's seven links took about 0.1 ms."""
        from flask import url_for

        key = (request.script_root, endpoint, *sorted(values.items()))
        url = constant_urls.get(key)
        if url is None:
            if endpoint == "static":  # by content: served as immutable (``PortalFlask``)
                values["v"] = app.static_digest(values["filename"])
            url = constant_urls[key] = url_for(endpoint, **values)
        return url

    @app.template_global()
    def query_without(*names: str) -> dict[str, str]:
        """This request's query arguments but ``names`` (a link that drops a filter, or the page)."""
        return {key: value for key, value in request.args.items() if key not in names}

    @app.template_global()
    def choice_url(endpoint: str, key: str, **values: Any) -> Any:
        """A link maker for a set of choices (an inbox's tabs): ``url_for`` runs once, each choice fills in its
        own value of the query argument ``key`` (first, quoted as werkzeug quotes a query)."""
        from urllib.parse import quote_plus

        from flask import url_for

        marker = "choice987654321"
        arguments = {key: marker, **{name: value for name, value in values.items() if name != key}}
        head, _, tail = url_for(endpoint, **arguments).partition(f"{key}={marker}")
        safe = "!$'()*,/:;?@"  # werkzeug's (the WHATWG's percent-encoding set)
        return lambda value: f"{head}{key}={quote_plus(str(value), safe=safe)}{tail}"

    @app.template_global()
    def row_url(endpoint: str, key: str, **values: Any) -> Any:
        """A link maker for a list: ``url_for`` runs once, each row only fills in its integer id.

        A 50-row page called ``url_for`` once per row, about a millisecond of every list request.
        """
        from flask import url_for

        marker = 987_654_321_012_345
        arguments: dict[str, Any] = {**values, key: marker}
        # url_for always places the value: in the path, or else as a query argument.
        head, _, tail = url_for(endpoint, **arguments).partition(str(marker))
        return lambda row_id: f"{head}{int(row_id)}{tail}"

    @app.context_processor
    def inject() -> dict[str, Any]:
        def switcher() -> list[Any]:
            if not current_user.is_authenticated:
                return []
            return active_memberships(db_session(), current_user.id)

        def unread_notifications() -> int:
            context = portal_context()
            if not current_user.is_authenticated or context is None:
                return 0
            counted = unread_notifications_read_with_memberships(context)
            if counted is not None:
                return counted
            from portal.notifications.services import unread_count

            return unread_count(db_session(), context.tenant_id, current_user.id)

        return {
            "unread_notifications": unread_notifications,
            "ctx": portal_context(),
            "Permission": Permission,
            "switcher_memberships": switcher,
            "portal_name": app.config["PORTAL_NAME"],
            "demo_mode": app.extensions["portal.settings"].demo_mode,
        }
