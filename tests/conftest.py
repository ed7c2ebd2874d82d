"""Shared fixtures: an app per test on a fresh instance folder, a client, report helpers."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.app import create_app
from portal.forwarding.keyring import generate
from portal.paths import THEMES, TRANSLATIONS
from portal.settings import load_settings
from tests.postgres import find_bin, postgres_server

IN_CI = os.environ.get("CI") == "true"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def need(condition: bool, reason: str) -> None:
    """Skip on a developer machine without a service; in CI a missing service is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


def make_settings(instance: Path, **overrides):
    env = {
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_THEMES_PATH": str(overrides.pop("themes_path", THEMES)),
        "PORTAL_TRANSLATIONS_PATH": str(TRANSLATIONS),
        "PORTAL_RATELIMIT_ENABLED": "false",
    }
    env.update(overrides.pop("env", {}))
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
            **(env or {})}
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
