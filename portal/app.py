"""The application factory: ``create_app`` reads as the list of steps that build the app."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from portal.db import db
from portal.i18n import configure_i18n
from portal.inbound import configure_inbound
from portal.keys import derive_key
from portal.languages import complete_languages
from portal.observability import configure_logging
from portal.security import configure_security
from portal.settings import Settings, load_settings
from portal.tenancy import configure_tenancy


class PortalFlask(Flask):
    """Flask, with ``ensure_sync`` remembering its answer for each function. Flask asks it
    about every hook and view on every request, and each answer costs an
    ``inspect.iscoroutinefunction``. At most ``MAX_SYNC`` functions are remembered, so
    functions made per request (``after_this_request``) cannot grow the memory."""

    MAX_SYNC = 512

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable, Callable] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        try:
            return self._sync[func]
        except KeyError:
            synced = super().ensure_sync(func)
            if len(self._sync) < self.MAX_SYNC:
                self._sync[func] = synced
            return synced
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = PortalFlask(__name__, instance_path=str(settings.instance_path), static_folder=None)
    app.extensions["portal.settings"] = settings
    configure_flask(app, settings)
    configure_logging(app)
    configure_database(app, settings)
    configure_i18n(app, settings)
    configure_tenancy(app, settings)
    configure_security(app, settings)
    configure_inbound(app, settings)
    configure_roles(app, settings)
    configure_health(app)
    return app


def configure_flask(app: Flask, settings: Settings) -> None:
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    app.config.update(SECRET_KEY=settings.secret_key, JSON_SORT_KEYS=False)
    app.config.update(settings.extra)


def configure_database(app: Flask, settings: Settings) -> None:
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    # A server's connections can drop while pooled; a SQLite file cannot, so no ping there (it
    # would cost a "SELECT 1" on every request that uses the database).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_pre_ping": not settings.database_url.startswith("sqlite")}
    db.init_app(app)
    # Import every area's models so that their tables are known; then bring the schema to the
    # newest migration (PORTAL_AUTO_MIGRATE, on by default; production runs 'portal db upgrade'
    # once per release and turns it off).
    import portal.accounts.models
    import portal.assessment.audit
    import portal.assessment.models
    import portal.forwarding.models
    import portal.sponsors.models  # noqa: F401

    if settings.auto_migrate:
        from portal.migrate import upgrade

        upgrade(app)


def configure_roles(app: Flask, settings: Settings) -> None:
    """Register only what this process's roles need (``PORTAL_ROLES``)."""
    from portal.forwarding import configure_forwarding

    configure_forwarding(app, settings)
    # The languages staff and sponsor accounts may choose: those whose domain is complete.
    app.extensions["portal.languages"] = complete_languages(settings.translations_path, "staff")
    app.extensions["portal.sponsor_languages"] = complete_languages(settings.translations_path,
                                                                     "sponsors")
    if settings.has_central or "sponsors" in settings.roles:
        configure_accounts(app, settings)
    if settings.has_central:
        configure_back_office(app, settings)
    if "sponsors" in settings.roles:
        from portal.sponsors.views import bp as sponsors_bp

        if "portal.mailer" not in app.extensions:
            from portal.mail import make_mailer

            app.extensions["portal.mailer"] = make_mailer(settings.smtp_url, settings.mail_from)
        app.register_blueprint(sponsors_bp)
    if settings.has_edge:
        from portal.reporting import configure_reporting

        configure_reporting(app, settings, receipt_key=derive_key(settings.secret_key, "receipt"))
    configure_errors(app)


def configure_accounts(app: Flask, settings: Settings) -> None:
    from portal.accounts.views import bp

    app.extensions["portal.accounts"] = {
        "totp_key": derive_key(settings.secret_key, "totp"),
        "recovery_key": derive_key(settings.secret_key, "recovery-codes"),
        "idle_seconds": settings.staff_idle_minutes * 60,
        "login_limit": settings.login_limit,
    }
    app.register_blueprint(bp)


def configure_back_office(app: Flask, settings: Settings) -> None:
    from portal.assessment.trace import IpDatabase, Resolver, Tracer
    from portal.assessment.views import bp
    from portal.mail import make_mailer

    app.extensions["portal.mailer"] = make_mailer(settings.smtp_url, settings.mail_from)
    nameservers, port = None, 53
    if settings.dns_resolver:
        host, _, port_text = settings.dns_resolver.partition(":")
        nameservers, port = [host], int(port_text or 53)
    app.extensions["portal.tracer"] = Tracer(Resolver(nameservers, port=port), IpDatabase())
    app.register_blueprint(bp)


def configure_errors(app: Flask) -> None:
    from portal.reporting.errors import register_error_pages

    register_error_pages(app)


def configure_health(app: Flask) -> None:
    """``/healthz`` tells anyone only ok or not ok: 200 ``{"status": "ok"}`` or 503
    ``{"status": "not ok"}`` (database unreachable, or the outbox stuck). The figures behind
    that answer (outbox size and age, transport backlog, import lag, the analysts' queue)
    are served by ``/healthz/details`` and ``/metrics`` to monitoring clients only
    (``monitoring_only``: addresses in ``PORTAL_MONITORING_NETWORKS``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from portal.forwarding import status_update_warnings
    from portal.forwarding.health import forwarding_health
    from portal.observability import is_monitoring_client, metrics_response, monitoring_only

    def health_check() -> tuple[str, dict[str, object]]:
        try:
            db.session.execute(db.text("SELECT 1"))
            health = forwarding_health(app)
        except SQLAlchemyError as exc:
            db.session.rollback()
            return "database unavailable", {"error": type(exc).__name__}
        return ("outbox stuck" if health.get("outbox_stuck") else "ok"), health

    @app.get("/healthz")
    def healthz():
        status, _ = health_check()
        return ({"status": "ok"}, 200) if status == "ok" else ({"status": "not ok"}, 503)

    @app.get("/healthz/details")
    @monitoring_only
    def healthz_details():
        status, health = health_check()
        return {"status": status, **health}, 200 if status == "ok" else 503

    @app.get("/readyz")
    def readyz():
        """Ready to take traffic: database reachable and at the newest migration, keys and
        transport usable. 503 otherwise; the reasons (and warnings) only to monitoring."""
        from portal.migrate import current_revision, head_revision

        problems = []
        try:
            db.session.execute(db.text("SELECT 1"))
            if current_revision(app) != head_revision():
                problems.append("database schema is not at the newest migration")
        except Exception as exc:  # any driver error means not ready
            problems.append(f"database unavailable: {type(exc).__name__}")
        transport = app.extensions["portal.transport"]
        if hasattr(transport, "check"):
            problems.extend(transport.check())
        if app.extensions["portal.settings"].has_edge:
            try:
                app.extensions["portal.reporting"]["sealing_key"].get()
            except Exception as exc:  # a missing or unreadable key file
                problems.append(f"sealing key unavailable: {type(exc).__name__}")
        answer = {"status": "not ready", "problems": problems} if problems else {"status": "ready"}
        # No reason to stop taking reports, so a warning, not a problem.
        if warnings := status_update_warnings(app):
            answer["warnings"] = warnings
        if not is_monitoring_client():  # the reasons name internals: monitoring sees them
            answer = {"status": answer["status"]}
        return answer, 503 if problems else 200

    @app.get("/metrics")
    @monitoring_only
    def metrics():
        return metrics_response(forwarding_health(app))
