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

    from portal.tenancy.themes import DEFAULT_THEME, ThemeError, draft_warnings, load_portals

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
    for warning in draft_warnings(portals, settings.translations_path):
        click.echo(f"warning: {warning}", err=True)
    names = ", ".join(sorted(portals))
    click.echo(f"themes OK: {len(portals)} portal(s) ({names}) and {DEFAULT_THEME}")


# -- languages --------------------------------------------------------------------------------


@main.group(cls=click.Group)
def languages() -> None:
    """The shipped languages: catalogues per domain (public, sponsors, staff)."""


@languages.command("add")
@click.argument("tag")
def languages_add(tag: str) -> None:
    """Create LANG's catalogues (every domain) from the templates, and its draft review record."""
    from datetime import UTC, datetime

    from portal.languages import LanguageError, add_language

    settings = _settings_or_exit()
    try:
        written = add_language(settings.translations_path, tag,
                               datetime.now(UTC).date().isoformat())
    except LanguageError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"translate translations/{tag}/LC_MESSAGES/public.po first: a portal can list "
               f"{tag} once it is complete ('portal languages status' shows how far it is)")


@languages.command("status")
def languages_status() -> None:
    """Each language with its completeness per domain and its review status."""
    from portal.languages import DOMAINS, catalogue_tags, completeness, review_status

    translations = _settings_or_exit().translations_path
    click.echo(f"{'language':<10}" + "".join(f"{d:>20}" for d in DOMAINS) + "  review")
    for tag in catalogue_tags(translations):
        cells = []
        for domain in DOMAINS:
            state = completeness(translations, tag, domain)
            mark = "complete" if state.complete else f"{state.missing} missing"
            cells.append(f"{f'{state.translated}/{state.total} {mark}':>20}")
        click.echo(f"{tag:<10}" + "".join(cells) + f"  {review_status(translations, tag)}")


@languages.command("update")
def languages_update() -> None:
    """Re-extract every domain's template and merge it into each catalogue."""
    from portal.languages import update_catalogues
    from portal.paths import ROOT

    for (tag, domain), state in sorted(update_catalogues(ROOT).items()):
        if not state.complete:
            click.echo(f"{tag} {domain}: {state.missing} of {state.total} to translate")


# -- keys -------------------------------------------------------------------------------------


@main.group(cls=click.Group)
def keys() -> None:
    """The central team's key pairs (PORTAL_KEYS_PATH)."""


@keys.command("generate")
def keys_generate() -> None:
    """Add a new current key pair, and a status-signing key pair; older private keys stay to
    open older envelopes, older signing keys keep signing until retired."""
    from portal.forwarding.keyring import KeyringError, generate
    from portal.forwarding.status_signer import check_room, generate_signing_key

    settings = _settings_or_exit()
    try:
        check_room(settings.keys_path)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    kid = generate(settings.keys_path)
    click.echo(f"new current key {kid} in {settings.keys_path}")
    signing = generate_signing_key(settings.keys_path)
    click.echo(f"new status-signing key {signing}")


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
    for kid in sorted(public.verify):
        private = (settings.keys_path / "signing" / f"{kid}.key").exists()
        click.echo(f"{kid}\tstatus signing, {'private key here' if private else 'public only'}")


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
    if public.verify:
        click.echo(f"installed {len(public.verify)} status verify key(s)")
    else:
        # A file exported before status updates were signed: accepted, but said loudly.
        click.echo("warning: this file holds no status verify key, so this edge will drop "
                   "every status update from the centre; export the public keys again on the "
                   "central side", err=True)


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


@main.group()
def db() -> None:
    """The database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Bring the schema to REVISION (default: the newest)."""
    from portal.migrate import current_revision, upgrade

    upgrade(current_app, revision)
    click.echo(f"database at revision {current_revision(current_app)}")


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Print the schema's revision."""
    from portal.migrate import current_revision

    click.echo(current_revision(current_app) or "empty")


# -- users and audit (central) ----------------------------------------------------------------


@main.group()
def users() -> None:
    """Staff and sponsor accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["analyst", "lead", "admin", "sponsor"]))
@click.option("--language", default="en", show_default=True)
@click.option("--portal", "portals", multiple=True, help="Sponsors: a portal they may see.")
@with_appcontext
def users_create(email: str, name: str, role: str, language: str, portals: tuple[str, ...]) -> None:
    """Create an account and print its one-time password."""
    from portal.accounts.auth import find_user
    from portal.assessment.audit import record
    from portal.assessment.views import create_account
    from portal.db import db

    known = current_app.extensions["portal.tenancy"].portals
    if role == "sponsor" and (not portals or any(p not in known for p in portals)):
        raise click.ClickException(f"a sponsor needs --portal with one of: {', '.join(known)}")
    key = "portal.sponsor_languages" if role == "sponsor" else "portal.languages"
    if language not in current_app.extensions[key]:
        audience = "sponsors" if role == "sponsor" else "staff"
        raise click.ClickException(
            f"language {language!r} has no complete {audience} catalogue; "
            f"complete ones: {', '.join(current_app.extensions[key])} "
            "('portal languages status' shows each language)")
    if find_user(email):
        raise click.ClickException(f"{email} exists already")
    user, password = create_account(email, name, role, language, list(portals))
    record("user.create", actor_id=None, actor="cli", target_type="user", target_id=user.id,
           details={"role": role})
    db.session.commit()
    click.echo(f"created {role} {user.email}; one-time password: {password}")


def _user_or_fail(email: str):
    from portal.accounts.auth import find_user

    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no account {email}")
    return user


@users.command("disable")
@click.argument("email")
@with_appcontext
def users_disable(email: str) -> None:
    """Disable an account and end its sessions."""
    from portal.assessment.audit import record
    from portal.db import db

    user = _user_or_fail(email)
    user.disabled, user.session_version = True, user.session_version + 1
    record("user.disable", actor_id=None, actor="cli", target_type="user", target_id=user.id)
    db.session.commit()
    click.echo(f"disabled {user.email}")


@users.command("reset")
@click.argument("email")
@with_appcontext
def users_reset(email: str) -> None:
    """New one-time password; the second factor is enrolled again; sessions end."""
    from portal.assessment.audit import record
    from portal.assessment.views import reset_account
    from portal.db import db

    user = _user_or_fail(email)
    password = reset_account(user)
    record("user.reset", actor_id=None, actor="cli", target_type="user", target_id=user.id)
    db.session.commit()
    click.echo(f"reset {user.email}; one-time password: {password}")


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.option("--head", "expected", default="", help="A recorded head: ID:HASH.")
@with_appcontext
def audit_verify(expected: str) -> None:
    """Check every entry's hash and link; exit 1 on any problem."""
    from portal.assessment.audit import head, verify_chain

    recorded = None
    if expected:
        ident, _, digest = expected.partition(":")
        recorded = (int(ident), digest)
    problems = verify_chain(expected_head=recorded)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    current = head()
    click.echo(f"audit log intact; head {current[0]}:{current[1]}" if current else
               "audit log empty")


@main.group()
def summaries() -> None:
    """Progress reports for the sponsors of each portal."""


@summaries.command("send")
@click.option("--period", "spec", default="last-month", show_default=True,
              help="last-month, last-quarter, last-year, 2026-10, 2026-Q3, 2026 or A..B")
@click.option("--portal", "only", default="", help="Only this portal.")
@with_appcontext
def summaries_send(spec: str, only: str) -> None:
    """Render and deliver each portal's report; safe to run again (cron): what was delivered
    is skipped, what failed is tried again. Exit 1 when anything failed."""
    from portal.sponsors.delivery import deliver
    from portal.sponsors.periods import PeriodError
    from portal.sponsors.views import build

    portals = current_app.extensions["portal.tenancy"].portals
    chosen = [portals[only]] if only in portals else [] if only else list(portals.values())
    if only and not chosen:
        raise click.ClickException(f"no portal {only!r}")
    failed = 0
    for portal in chosen:
        try:
            outcome = deliver(portal, spec, build)
        except PeriodError as exc:
            raise click.ClickException(f"period not understood: {spec}") from exc
        for line in outcome.sent:
            click.echo(f"sent {line}")
        for line in outcome.skipped:
            click.echo(f"already delivered {line}")
        for line in outcome.failed:
            click.echo(f"FAILED {line}", err=True)
        failed += len(outcome.failed)
    if failed:
        sys.exit(1)


@main.group()
def figures() -> None:
    """Stored sponsor figures of ended months, quarters and years."""


@figures.command("refresh")
@with_appcontext
def figures_refresh() -> None:
    """Store the figures of every ended period that may still change (run nightly): sponsor
    reports then read them instead of counting again. Prints how many periods were stored."""
    from portal.db import db
    from portal.sponsors.figures import Figuring

    settings = current_app.extensions["portal.settings"]
    if not settings.has_central:
        raise click.ClickException("figures live in the central database (PORTAL_ROLES has no central)")
    figuring = Figuring.from_settings(settings)
    portals = current_app.extensions["portal.tenancy"].portals
    stored = sum(figuring.refresh(slug, portal.timezone) for slug, portal in sorted(portals.items()))
    stored += figuring.refresh(None, "UTC")
    db.session.commit()
    click.echo(f"stored {stored}")


@main.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go, change nothing.")
@with_appcontext
def purge(dry_run: bool) -> None:
    """Enforce the retention rules (run daily; README "Retention"): contact details after
    closure, finished reports after PORTAL_REPORT_RETENTION_DAYS (their sponsor figures kept),
    addresses no report names any more, forgotten receipts at the edge."""
    from portal.retention import purge as run

    settings = current_app.extensions["portal.settings"]
    portals = {slug: portal.timezone
               for slug, portal in current_app.extensions["portal.tenancy"].portals.items()}
    result = run(settings, portals, dry_run=dry_run)
    for line in result.lines():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was changed")


# -- demo -------------------------------------------------------------------------------------


@main.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run everything on embedded defaults: SQLite, local spool, captcha off."""
    from werkzeug.serving import run_simple

    from portal.app import create_app
    from portal.devserver import PrivateRequestHandler
    from portal.forwarding.keyring import KeyringError, generate, read_private
    from portal.forwarding.status_signer import generate_signing_key
    from portal.tenancy.themes import ThemeError

    settings = _settings_or_exit()
    try:
        read_private(settings.keys_path)
    except KeyringError:
        kid = generate(settings.keys_path)
        click.echo(f"created the central key pair {kid} in {settings.keys_path}")
        signing = generate_signing_key(settings.keys_path)
        click.echo(f"created the status-signing key {signing}")
    # The demo serves plain HTTP, over which a Secure session cookie would never come back.
    settings = settings.with_changes(captcha="none", cookie_secure=False)
    # Served under the name it was asked to listen on (PORTAL_TRUSTED_HOSTS names others).
    if host not in ("0.0.0.0", "::") and host not in settings.trusted_hosts:  # noqa: S104 - compared
        settings = settings.with_changes(trusted_hosts=(*settings.trusted_hosts, host.lower()))
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

    with app.app_context():
        accounts = demo_accounts(app)
    threading.Thread(target=pump, name="demo-forwarding", daemon=True).start()
    base = f"http://{host}:{port}"
    portals = app.extensions["portal.tenancy"].portals
    click.echo(f"Portal demo on {base}  (instance folder: {settings.instance_path})")
    for slug in sorted(portals):
        click.echo(f"  {slug}: {base}/{slug}/")
    click.echo(f"Back office: {base}/staff/login   Sponsors: {base}/sponsors/")
    if accounts:
        click.echo("Demo accounts (created now; passwords are shown only this once and must be "
                   "changed at first sign-in, where a second factor is set up):")
        for email, role, password in accounts:
            click.echo(f"  {role:8} {email}  {password}")
    else:
        click.echo("Demo accounts exist from an earlier start; reset one with "
                   "'portal users reset EMAIL'.")
    click.echo("Reports are forwarded and imported every 2 seconds. Stop with Ctrl+C.")
    run_simple(host, port, app, threaded=True, use_reloader=False,
               request_handler=PrivateRequestHandler)


DEMO_ACCOUNTS = (
    ("analyst@demo.example", "Demo Analyst", "analyst"),
    ("lead@demo.example", "Demo Lead", "lead"),
    ("admin@demo.example", "Demo Administrator", "admin"),
    ("sponsor@demo.example", "Demo Sponsor", "sponsor"),
)


def demo_accounts(app) -> list[tuple[str, str, str]]:
    """Create the demo staff and sponsor accounts on first start."""
    from portal.accounts.auth import find_user
    from portal.assessment.audit import record
    from portal.assessment.views import create_account
    from portal.db import db

    if find_user(DEMO_ACCOUNTS[0][0]):
        return []
    created = []
    for email, name, role in DEMO_ACCOUNTS:
        user, password = create_account(email, name, role, "en",
                                        ["demo"] if role == "sponsor" else [])
        record("user.create", actor_id=None, actor="demo", target_type="user",
               target_id=user.id, details={"role": role})
        created.append((email, role, password))
    db.session.commit()
    return created


if __name__ == "__main__":  # pragma: no cover
    main()
