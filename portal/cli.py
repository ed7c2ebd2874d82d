"""The ``portal`` command: Flask's CLI bound to the app factory, plus our own commands."""

from __future__ import annotations

import signal
import sys
import threading
import time

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from portal.settings import SettingsError, load_settings


def _create_app():
    from portal.app import create_app
    from portal.tenancy.themes import ThemeError

    try:
        return create_app()
    except (SettingsError, ThemeError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False,
             load_dotenv=False)
def main() -> None:
    """Portal: white-label reporting portals and the central back office."""


def _settings_or_exit():
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


# -- themes -----------------------------------------------------------------------------------


@main.group(cls=click.Group)
def themes() -> None:
    """Country portals under themes/."""


@themes.command("check")
def themes_check() -> None:
    """Validate every folder under themes/; exit 1 with one line per problem."""
    from jinja2 import Environment, FileSystemLoader, TemplateSyntaxError

    from portal.tenancy.themes import DEFAULT_THEME, ThemeError, load_portals

    settings = _settings_or_exit()
    problems: list[str] = []
    try:
        portals = load_portals(settings.themes_path, settings.translations_path)
    except ThemeError as exc:
        problems.extend(exc.problems)
        portals = {}
    env = Environment(loader=FileSystemLoader(str(settings.themes_path)),
                      extensions=["jinja2.ext.i18n", "jinja2.ext.do"], autoescape=True)
    for folder in sorted(p for p in settings.themes_path.iterdir() if p.is_dir()):
        for template in sorted((folder / "templates").rglob("*.html")):
            name = template.relative_to(settings.themes_path).as_posix()
            try:
                env.parse(template.read_text(encoding="utf-8"), name=name)
            except TemplateSyntaxError as exc:
                problems.append(f"themes/{name}: line {exc.lineno}: {exc.message}")
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(1)
    names = ", ".join(sorted(portals))
    click.echo(f"themes OK: {len(portals)} portal(s) ({names}) and {DEFAULT_THEME}")


# -- keys -------------------------------------------------------------------------------------


@main.group(cls=click.Group)
def keys() -> None:
    """The central team's key pairs (PORTAL_KEYS_PATH)."""


@keys.command("generate")
def keys_generate() -> None:
    """Add a new current key pair; older private keys stay to open older envelopes."""
    from portal.forwarding.keyring import generate

    settings = _settings_or_exit()
    kid = generate(settings.keys_path)
    click.echo(f"new current key {kid} in {settings.keys_path}")


@keys.command("list")
def keys_list() -> None:
    """Every key id, which one is current, and whether its private key is here."""
    from portal.forwarding.keyring import KeyringError, read_public

    settings = _settings_or_exit()
    try:
        public = read_public(settings.keys_path)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    for kid in sorted(public.keys):
        private = (settings.keys_path / "private" / f"{kid}.key").exists()
        flags = ["current" if kid == public.current else "old",
                 "private key here" if private else "public only"]
        click.echo(f"{kid}\t{', '.join(flags)}")


@keys.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Remove an old key pair once no envelope sealed with it is still on its way."""
    from portal.forwarding.keyring import KeyringError, retire

    settings = _settings_or_exit()
    try:
        retire(settings.keys_path, kid)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"retired {kid}")


@keys.command("export-public")
def keys_export_public() -> None:
    """Print the public keys, for 'portal keys import-public' on an edge."""
    from portal.forwarding.keyring import KeyringError, read_public

    settings = _settings_or_exit()
    try:
        click.echo(read_public(settings.keys_path).to_json())
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc


@keys.command("import-public")
@click.argument("source", type=click.File("r"))
def keys_import_public(source) -> None:
    """Install public keys from FILE (or - for standard input) in this keyring."""
    from portal.forwarding.keyring import KeyringError, PublicKeys, install_public

    settings = _settings_or_exit()
    try:
        public = PublicKeys.from_json(source.read(), source.name)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    install_public(settings.keys_path, public)
    click.echo(f"installed {len(public.keys)} public key(s), current {public.current}")


# -- forwarding -------------------------------------------------------------------------------


BATCH = 200


def _loop(step, once: bool, interval: float) -> None:
    """Run ``step`` once, or until SIGTERM/SIGINT; the round in progress always finishes."""
    from portal.forwarding.transport import TransportError

    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    transport = current_app.extensions["portal.transport"]
    if once and hasattr(transport, "wait_seconds"):
        transport.wait_seconds = min(transport.wait_seconds, 1)  # drain, do not linger
    while True:
        try:
            step()
        except TransportError as exc:
            click.echo(f"transport unavailable, will retry: {exc}", err=True)
            if once:
                sys.exit(1)
        if once or stop.wait(interval):
            return


@main.command("forward")
@click.option("--once", is_flag=True, help="Ship what is in the outbox now, then exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between rounds.")
@with_appcontext
def forward(once: bool, interval: float) -> None:
    """Ship sealed envelopes from the outbox to the transport (edge)."""
    from portal.forwarding.forwarder import apply_status_updates, forward_once

    transport = current_app.extensions["portal.transport"]

    def step() -> None:
        sent = failed = 0
        while True:  # the whole due outbox, batch after batch
            result = forward_once(transport, batch=BATCH)
            sent, failed = sent + result.sent, failed + result.failed
            if result.sent + result.failed < BATCH:
                break
        statuses = apply_status_updates(transport)
        if once or sent or failed:
            click.echo(f"forwarded {sent}, failed {failed}, statuses {statuses}")

    _loop(step, once, interval)


@main.command("import")
@click.option("--once", is_flag=True, help="Drain what the transport holds now, then exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between rounds.")
@with_appcontext
def import_(once: bool, interval: float) -> None:
    """Take envelopes from the transport into the central back office."""
    from portal.assessment.services import ship_status_updates
    from portal.forwarding.importer import import_once

    if "portal.private_keys" not in current_app.extensions:
        raise click.ClickException("this process has no central role (PORTAL_ROLES)")
    ext = current_app.extensions
    transport = ext["portal.transport"]

    def step() -> None:
        result = import_once(transport, ext["portal.private_keys"], ext["portal.contact_key"])
        ship_status_updates(transport)
        if once or result.imported or result.dead:
            click.echo(f"duplicates {result.duplicates}, dead-lettered {result.dead}")
            click.echo(f"imported {result.imported}")

    _loop(step, once, interval)


@main.command("outbox")
@with_appcontext
def outbox() -> None:
    """Backlog: envelopes waiting at this edge, the oldest one's age, and the transport's queue."""
    from portal.forwarding.health import forwarding_health

    health = forwarding_health(current_app)
    for key, value in health.items():
        click.echo(f"{key}: {value}")


# -- reports (central, until the back office lands) ------------------------------------------


@main.group()
def reports() -> None:
    """Reports in the central database."""


@reports.command("list")
@click.option("--limit", default=20, show_default=True)
@with_appcontext
def reports_list(limit: int) -> None:
    """The newest reports: id, portal, language, urgency, status and number of URLs."""
    from sqlalchemy import select

    from portal.assessment.models import Report
    from portal.db import db

    rows = db.session.scalars(select(Report).order_by(Report.id.desc()).limit(limit))
    for report in rows:
        flag = "URGENT" if report.urgent else "-"
        click.echo(f"{report.id}\t{report.portal}\t{report.lang}\t{flag}\t{report.status}\t"
                   f"{len(report.urls)} url(s)\t{report.received_at:%Y-%m-%d %H:%M}")


@reports.command("set-status")
@click.argument("report_id", type=int)
@click.argument("status", type=click.Choice(
    ["received", "in_assessment", "action_taken", "no_action", "closed"]))
@with_appcontext
def reports_set_status(report_id: int, status: str) -> None:
    """Change a report's public status; it reaches the edge with the next import round."""
    from portal.assessment.models import Report
    from portal.assessment.services import set_status
    from portal.db import db

    report = db.session.get(Report, report_id)
    if report is None:
        raise click.ClickException(f"no report {report_id}")
    set_status(report, status)
    db.session.commit()
    click.echo(f"report {report_id} is now {status}")


# -- demo -------------------------------------------------------------------------------------


@main.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run everything on embedded defaults: SQLite, local spool, captcha off."""
    from werkzeug.serving import run_simple

    from portal.app import create_app
    from portal.forwarding.keyring import KeyringError, generate, read_private
    from portal.tenancy.themes import ThemeError

    settings = _settings_or_exit()
    try:
        read_private(settings.keys_path)
    except KeyringError:
        kid = generate(settings.keys_path)
        click.echo(f"created the central key pair {kid} in {settings.keys_path}")
    settings = settings.with_changes(captcha="none")
    try:
        app = create_app(settings)
    except (SettingsError, ThemeError) as exc:
        raise click.ClickException(str(exc)) from exc

    def pump() -> None:
        """Forward and import every two seconds, as the two workers would."""
        from portal.assessment.services import ship_status_updates
        from portal.forwarding.forwarder import apply_status_updates, forward_once
        from portal.forwarding.importer import import_once

        ext = app.extensions
        transport = ext["portal.transport"]
        while True:
            with app.app_context():
                try:
                    forward_once(transport)
                    import_once(transport, ext["portal.private_keys"], ext["portal.contact_key"])
                    ship_status_updates(transport)
                    apply_status_updates(transport)
                except Exception as exc:  # keep the demo alive; the error is printed
                    click.echo(f"demo forwarding round failed: {exc!r}", err=True)
            time.sleep(2)

    threading.Thread(target=pump, name="demo-forwarding", daemon=True).start()
    base = f"http://{host}:{port}"
    portals = app.extensions["portal.tenancy"].portals
    click.echo(f"Portal demo on {base}  (instance folder: {settings.instance_path})")
    for slug in sorted(portals):
        click.echo(f"  {slug}: {base}/{slug}/")
    click.echo("Reports are forwarded and imported every 2 seconds. "
               "'portal reports list' and 'portal reports set-status ID STATUS' act as the "
               "central team until the back office lands. Stop with Ctrl+C.")
    run_simple(host, port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":  # pragma: no cover
    main()
