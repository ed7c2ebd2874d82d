"""`portal demo` (CONTRACT.md): the whole service on embedded defaults, as a person starts it."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.conftest import database_env, portal_cli
from tests.ports import free_port


def test_demo_serves_the_portal_forwards_and_imports(tmp_path):
    port = free_port()
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
           **database_env(tmp_path / "instance")}  # nothing on SQLite: the demo's own default
    env.pop("PORTAL_SECRET_KEY", None)
    log = (tmp_path / "demo.log").open("w+")
    # Ctrl+C must reach the demo even when the test run itself was started in the background
    # by a shell, which starts such jobs with SIGINT ignored, and children inherit that.
    demo = subprocess.Popen([sys.executable, "-m", "portal.cli", "demo", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(
        http.cookiejar.CookieJar()))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if opener.open(f"{base}/healthz", timeout=2).status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "demo did not start"
                assert demo.poll() is None, "demo exited"
                time.sleep(0.3)
        landing = opener.open(f"{base}/demo/")
        assert landing.url == f"{base}/demo/en/"
        form = opener.open(f"{base}/demo/en/report").read().decode()
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        body = urllib.parse.urlencode({"csrf_token": csrf, "urls": "site.example.test/demo",
                                       "content_type": "images", "where_found": "website"})
        receipt = opener.open(f"{base}/demo/en/report", body.encode()).read().decode()
        assert 'id="receipt"' in receipt
        # The demo's own forwarder and importer bring the report to the centre.
        listed = ""
        while "demo\ten" not in listed and time.monotonic() < deadline + 30:
            time.sleep(1)
            listed = portal_cli(tmp_path / "instance", "reports", "list",
                                env={"PORTAL_SECRET_KEY": (tmp_path / "instance" / "secret_key")
                                     .read_text().strip()}).stdout
        assert "demo\ten" in listed
        assert opener.open(f"{base}/staff/login").status == 200
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=10)
            raise
        log.seek(0)
        output = log.read()
        log.close()
    for email in ("analyst@demo.example", "lead@demo.example", "admin@demo.example",
                  "sponsor@demo.example"):
        assert email in output
    assert f"{base}/demo/" in output and "/staff/login" in output
