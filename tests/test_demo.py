"""`portal demo` (CONTRACT.md): the whole service on embedded defaults, as a person starts it."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.conftest import RECEIPT_RE, database_env, portal_cli
from tests.ports import free_port


def test_demo_serves_the_portal_forwards_and_imports(tmp_path):
    port = free_port()
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
           **database_env(tmp_path / "instance")}  # nothing on SQLite: the demo's own default
    env.pop("PORTAL_SECRET_KEY", None)
    log_path = tmp_path / "demo.log"
    log = log_path.open("w+")
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
                assert demo.poll() is None, f"demo exited:\n{log_path.read_text()}"
                time.sleep(0.3)
        # A malformed request: the development server logs it (at error level, so it is not
        # silenced), but without the client's address or the request line.
        logged = len(log_path.read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET /demo/?q=QUERYMARK extra HTTP/1.1\r\n\r\n")
            assert raw.recv(64).startswith(b"HTTP/1.1 400 ")
        # The server logs before it answers, so the line is in the file now.
        line = log_path.read_text()[logged:]
        assert "code 400" in line, line
        assert "127.0.0.1" not in line and "QUERYMARK" not in line, line
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
        # A status set centrally comes back to the edge signed, with no step of anyone's.
        code = RECEIPT_RE.search(receipt).group(1).replace(" ", "")
        secret = {"PORTAL_SECRET_KEY": (tmp_path / "instance" / "secret_key").read_text().strip()}
        report_id = re.search(r"^(\d+)\tdemo\ten", listed, re.M).group(1)
        changed = portal_cli(tmp_path / "instance", "reports", "set-status", report_id,
                             "in_assessment", env=secret)
        assert changed.returncode == 0, changed.stderr
        shown = ""
        while 'data-status="in_assessment"' not in shown and time.monotonic() < deadline + 60:
            time.sleep(1)
            page = opener.open(f"{base}/demo/en/status").read().decode()
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
            shown = opener.open(f"{base}/demo/en/status", urllib.parse.urlencode(
                {"csrf_token": token, "receipt": code}).encode()).read().decode()
        assert 'data-status="in_assessment"' in shown
        assert len(list((tmp_path / "instance" / "keys" / "signing").glob("*.key"))) == 1
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
    # The address appears only in the demo's own links, never as a client's.
    assert all(base in line for line in output.splitlines() if "127.0.0.1" in line), output
