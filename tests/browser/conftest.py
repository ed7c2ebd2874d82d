"""Real headless Chromium (Debian's) against the app served on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portal.app import create_app
from portal.forwarding.keyring import generate
from tests.conftest import ROOT, make_settings, need

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    instance: Path = tmp_path_factory.mktemp("browser") / "instance"
    generate(instance / "keys")
    app = create_app(make_settings(instance))
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    need(Path(CHROMIUM).exists(), "Debian's chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        need(False, "playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    need(AXE.exists(), "axe-core is not installed (npm ci)")
    return AXE.read_text()


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_violations(page, axe_source: str) -> list[str]:
    """axe-core's WCAG 2.0-2.2 A and AA violations on the page now, as ``id: targets``."""
    page.add_script_tag(content=axe_source)
    return page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => v.id + ': ' + v.nodes.map("
        "n => n.target.join(' ')).join(', ')))", AXE_TAGS)


def html_checker_errors(pages: dict[str, str], folder: Path) -> list[str]:
    """The Nu HTML Checker's errors on each page (name -> HTML), checked in one run."""
    need(VNU.exists(), "the Nu HTML Checker is not installed (npm ci)")
    files = []
    for name, html in pages.items():
        path = folder / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        files.append(str(path))
    run = subprocess.run(["java", "-jar", str(VNU), "--errors-only", "--format", "json", *files],
                         capture_output=True, text=True, timeout=600, check=False)
    messages = json.loads(run.stderr or '{"messages": []}')["messages"]
    errors = [f"{m.get('url', '').rsplit('/', 1)[-1]}:{m.get('lastLine')}: {m.get('message')}"
              for m in messages if m.get("type") == "error"]
    assert errors or run.returncode == 0, run.stderr[-2000:]
    return errors
