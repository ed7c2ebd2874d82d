"""Shared fixtures: an app per test on a fresh instance folder, a client, report helpers."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, event, select
from sqlalchemy.engine import Engine, make_url

from portal.app import create_app
from portal.db import db
from portal.forwarding.keyring import generate
from portal.paths import THEMES, TRANSLATIONS
from portal.settings import load_settings
from tests.postgres import find_bin, postgres_server

IN_CI = os.environ.get("CI") == "true"
# Which database every app in the suite runs on: "sqlite" (the embedded default) or
# "postgresql" (one server started for the whole session, one fresh database per instance).
TEST_DATABASE = os.environ.get("PORTAL_TEST_DATABASE", "sqlite")
ON_POSTGRESQL = TEST_DATABASE == "postgresql"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
# The demo portal's languages, and the manifest line that lists them (for tests that copy it).
DEMO_LANGUAGES_LINE = next(line for line in (THEMES / "demo" / "portal.toml").read_text(
    encoding="utf-8").splitlines() if line.startswith("languages = "))
DEMO_LANGS = tuple(re.findall(r'"([^"]+)"', DEMO_LANGUAGES_LINE))


def need(condition: bool, reason: str) -> None:
    """Skip on a developer machine without a service; in CI a missing service is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DATABASE not in {"sqlite", "postgresql"}:
        raise pytest.UsageError(
            f"PORTAL_TEST_DATABASE must be 'sqlite' or 'postgresql', not {TEST_DATABASE!r}")


class SessionPostgres:
    """In a PostgreSQL run: one server for the session, started when first needed, and one
    fresh database per instance folder (the same folder always gets the same database, so an
    app built twice on it, or the `portal` command run on it, sees the same data)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._admin = None
        self._server_url: str | None = None
        self._failure: str | None = None
        self._urls: dict[str, str] = {}
        self.engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def server_url(self) -> str:
        if self._server_url is None:
            why = "PORTAL_TEST_DATABASE=postgresql, but"
            need(find_bin() is not None, f"{why} the PostgreSQL server binaries are not installed")
            need(importlib.util.find_spec("psycopg") is not None, f"{why} psycopg is not installed")
            if self._failure:
                pytest.fail(self._failure)
            try:
                self._server_url = self._stack.enter_context(postgres_server())
            except Exception as exc:
                self._failure = f"the PostgreSQL test server did not start: {exc!r}"
                raise
        return self._server_url

    def url_for(self, instance: Path) -> str:
        key = os.path.abspath(instance)
        if key not in self._urls:
            import psycopg

            server = self.server_url()
            if self._admin is None:
                admin_url = make_url(server).set(drivername="postgresql")
                self._admin = psycopg.connect(admin_url.render_as_string(hide_password=False),
                                              autocommit=True)
                self._stack.callback(self._admin.close)
            name = f"portal_test_{len(self._urls) + 1}"
            # FILE_COPY: a plain copy of the empty template, faster here than WAL logging it.
            self._admin.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
            self._urls[key] = make_url(server).set(database=name).render_as_string(hide_password=False)
        return self._urls[key]

    def release_connections(self) -> None:
        """Close the pooled connections of every engine the tests made: an app left to the
        garbage collector would otherwise drop open connections (a ResourceWarning, an error
        here) and pile up server connections between collections."""
        for engine in list(self.engines):
            engine.dispose()

    def close(self) -> None:
        # The server stops and its folder goes, databases and all.
        self.release_connections()
        self._stack.close()


SESSION_POSTGRES = SessionPostgres()
atexit.register(SESSION_POSTGRES.close)  # for scripts that import make_settings (benchmarks)

if ON_POSTGRESQL:
    @event.listens_for(Engine, "engine_connect")
    def _track_engine(connection) -> None:
        SESSION_POSTGRES.engines.add(connection.engine)


@pytest.fixture(autouse=True)
def _release_database_connections() -> Iterator[None]:
    yield
    if ON_POSTGRESQL:
        SESSION_POSTGRES.release_connections()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    SESSION_POSTGRES.close()


def database_env(instance: Path) -> dict[str, str]:
    """The database variables for an app or a `portal` process on this instance folder: none
    on SQLite (the default file in the folder), this folder's own database on PostgreSQL."""
    if not ON_POSTGRESQL:
        return {}
    return {"PORTAL_DATABASE_URL": SESSION_POSTGRES.url_for(instance)}


def tables_containing(marker: str) -> list[str]:
    """The tables of the current app's database holding the marker in any value, read through
    the database itself (SQLite or PostgreSQL alike), migration record included."""
    tables = MetaData()
    tables.reflect(bind=db.engine)
    found = []
    with db.engine.connect() as connection:
        for table in tables.sorted_tables:
            for row in connection.execute(select(table)):
                if any(marker.encode() in _as_bytes(value) for value in row):
                    found.append(table.name)
                    break
    return found


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return b"" if value is None else str(value).encode()


def make_settings(instance: Path, **overrides):
    env = {
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_THEMES_PATH": str(overrides.pop("themes_path", THEMES)),
        "PORTAL_TRANSLATIONS_PATH": str(TRANSLATIONS),
        "PORTAL_RATELIMIT_ENABLED": "false",
    }
    env.update(overrides.pop("env", {}))
    if "PORTAL_DATABASE_URL" not in env:
        env.update(database_env(instance))
    return load_settings(env, **overrides)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    generate(path / "keys")
    return path


@pytest.fixture
def settings(instance: Path):
    return make_settings(instance)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def themes_copy(tmp_path: Path) -> Path:
    """A writable copy of themes/, for tests that break or extend a theme."""
    target = tmp_path / "themes"
    shutil.copytree(THEMES, target)
    return target


def copy_portal(themes: Path, slug: str, replacements: dict[str, str]) -> Path:
    """themes/demo copied as themes/<slug>, with each replacement made in its portal.toml
    (each must match); the manifest's path."""
    shutil.copytree(themes / "demo", themes / slug)
    manifest = themes / slug / "portal.toml"
    text = manifest.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    manifest.write_text(text)
    return manifest


def csrf_token(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, "no CSRF token in the form"
    return match.group(1)


def submit_report(client, portal: str = "demo", lang: str = "en", **fields):
    url = f"/{portal}/{lang}/report"
    data = {
        "urls": "http://site.example.test/page",
        "content_type": "images",
        "where_found": "website",
        "description": "",
        "contact_email": "",
        "csrf_token": csrf_token(client, url),
    }
    data.update(fields)
    if data.get("child_in_danger") is False:
        del data["child_in_danger"]
    return client.post(url, data=data)


RECEIPT_RE = re.compile(r'id="receipt"[^>]*>([0-9 ]+)<')


def receipt_of(response) -> str:
    match = RECEIPT_RE.search(response.get_data(as_text=True))
    assert match, "no receipt on the page"
    return match.group(1).replace(" ", "")


@pytest.fixture(scope="module")
def postgres_url():
    if ON_POSTGRESQL:  # the session's server is already there: no second one
        yield SESSION_POSTGRES.server_url()
        return
    need(find_bin() is not None, "PostgreSQL server binaries not installed")
    try:
        import psycopg  # noqa: F401 - only checks that the driver is there
    except ImportError:  # pragma: no cover
        need(False, "psycopg is not installed")
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def moto_endpoint():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover
        need(False, "moto[server] is not installed")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def portal_cli(instance: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `portal` command, as a subprocess, on the given instance folder."""
    full = {**os.environ, "PORTAL_INSTANCE_PATH": str(instance), "PORTAL_SECRET_KEY": SECRET,
            **database_env(instance), **(env or {})}
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], env=full,
                          capture_output=True, text=True, timeout=180, check=False)


class Collector:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    need(importlib.util.find_spec("aiosmtpd") is not None, "aiosmtpd is not installed")
    from aiosmtpd.controller import Controller

    class LoopbackController(Controller):
        # aiosmtpd 1.4 checks readiness by connecting to self.port, which is still 0 when the
        # system picked the port: read the real one from the listening socket first.
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    handler = Collector()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


@pytest.fixture
def artifacts() -> Iterator[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield ARTIFACTS
