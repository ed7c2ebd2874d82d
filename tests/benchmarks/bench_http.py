"""HTTP throughput and latency under gunicorn, measured with wrk, against bare Flask baselines.

    python tests/benchmarks/bench_http.py [--duration 10s] [--workers 2]

Needs Debian's ``wrk`` (``apt-get install -y wrk``). Everything runs on 127.0.0.1 in one run:

1. Report intake: wrk POSTs the whole report form to ``/demo/en/report`` (CSRF, validation,
   sealing, one durable SQLite commit in WAL mode with synchronous=FULL, the receipt page).
   The session cookie and its CSRF token are fetched once with Python; afterwards the rows
   in ``outbox`` and ``receipt_status`` are counted and printed next to wrk's request count.
2. Its bare baseline: a tiny Flask app, written by this script into a temporary folder, whose
   POST parses the same form fields and inserts one row with SQLAlchemy into SQLite (WAL,
   synchronous=FULL), served by gunicorn with the same settings; the same wrk command.
3. The report page GET against a bare endpoint rendering a static Jinja template of the same
   size as our page.
4. The resident set size (VmRSS) of every gunicorn worker right after the intake run.

Both servers use ``infra/gunicorn.conf.py`` (workers, gthread, threads, keep-alive, worker
recycling, access log, libraries imported in the master); the bare one loads that file too,
minus its ``on_starting``, ``on_reload`` and ``post_fork`` hooks, which build Portal's app. Rate
limits are off; the key pair is generated for the run.
"""

from __future__ import annotations

import argparse
import http.cookies
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from portal.forwarding.keyring import generate

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.ports import free_port  # noqa: E402

GUNICORN_CONF = ROOT / "infra" / "gunicorn.conf.py"
TARGET_RATIO = 0.6
REPORT_PATH = "/demo/en/report"
BARE_PATH = "/report"
FORM = {"urls": "https://www.example.com/benchmark/page.html", "content_type": "images",
        "where_found": "website"}

BARE_APP = '''\
"""Bare baseline: parse the report form's fields, insert one row with SQLAlchemy; a static page."""

from datetime import UTC, datetime

from flask import Flask, render_template, request
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, event

DATABASE = {database!r}

engine = create_engine(f"sqlite:///{{DATABASE}}")


@event.listens_for(engine, "connect")
def pragmas(dbapi_connection, connection_record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


metadata = MetaData()
reports = Table(
    "reports", metadata,
    Column("id", Integer, primary_key=True),
    Column("urls", Text, nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("where_found", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

app = Flask(__name__)


@app.get("/report")
def page():
    return render_template("page.html")


@app.post("/report")
def intake():
    form = request.form
    urls = form.get("urls", "").strip()
    content_type, where_found = form.get("content_type", ""), form.get("where_found", "")
    if not urls or not content_type or not where_found or not form.get("csrf_token"):
        return "missing field", 400
    with engine.begin() as connection:
        connection.execute(reports.insert().values(
            urls=urls, content_type=content_type, where_found=where_found,
            created_at=datetime.now(UTC).replace(tzinfo=None),
        ))
    return "stored"
'''

BARE_CONF = '''\
"""Everything infra/gunicorn.conf.py sets, except the hooks that build Portal's app."""

import runpy

globals().update({{name: value for name, value in runpy.run_path({conf!r}).items()
                   if name not in {{"on_starting", "on_reload", "post_fork"}} and not name.startswith("__")}})
'''

LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = [==[{cookie}]==]
"""


# ---------------------------------------------------------------- servers


def opener() -> urllib.request.OpenerDirector:
    # No proxy from the environment: every request goes straight to loopback.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base: str
    stderr: Path
    workers_booted_at_start: int = 0

    def boots(self) -> int:
        return self.stderr.read_text(errors="replace").count("Booting worker with pid")

    def workers(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if re.search(rf"^PPid:\s+{self.process.pid}$", status, re.MULTILINE):
                found.append(int(entry.name))
        return sorted(found)

    def worker_rss_kib(self) -> dict[int, int]:
        rss = {}
        for pid in self.workers():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
            if match:
                rss[pid] = int(match.group(1))
        return rss

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(timeout=10)
        return self.process.returncode


def start_gunicorn(name: str, folder: Path, conf: Path, target: str, cwd: Path,
                   env: dict[str, str], ready_path: str, workers: int) -> Server:
    port = free_port()
    # PYTHONDONTWRITEBYTECODE is dropped: an installed package (as in infra/Containerfile) has
    # its bytecode compiled, so a worker that max_requests starts does not compile the sources.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PORTAL_", "GUNICORN_")) and k != "PYTHONDONTWRITEBYTECODE"} | env
    env.update({"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)})
    stdout, stderr = folder / f"{name}.out", folder / f"{name}.err"
    # Files, not pipes: a full pipe would block gunicorn, and files need no reader.
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(conf), target],
                                   cwd=cwd, env=env, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL)
    server = Server(name, process, f"http://127.0.0.1:{port}", stderr)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name}: gunicorn exited with {process.returncode}:\n"
                             f"{stderr.read_text(errors='replace')[-3000:]}")
        try:
            with opener().open(server.base + ready_path, timeout=5) as response:
                if response.status == 200 and len(server.workers()) == workers:
                    server.workers_booted_at_start = server.boots()
                    return server
        except OSError:
            pass
        time.sleep(0.25)
    server.stop()
    raise SystemExit(f"{name}: no answer on {ready_path} within 90 s:\n"
                     f"{stderr.read_text(errors='replace')[-3000:]}")


# ---------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    rps: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> WrkResult:
    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match

    p99 = need(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(r"Socket errors:\s*connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        output)
    return WrkResult(
        requests=int(need(r"^\s*(\d+) requests in ").group(1)),
        rps=float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p99_ms=float(p99.group(1)) * UNITS_MS[p99.group(2)],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def wrk(url: str, args: argparse.Namespace, duration: str, script: Path | None = None) -> WrkResult:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def warm_up(url: str, args: argparse.Namespace, script: Path | None = None) -> None:
    if args.warmup > 0:
        wrk(url, args, f"{args.warmup}s", script)
        time.sleep(1)  # requests still in flight when the warm-up ended finish first


def measure(server, path: str, args: argparse.Namespace, script: Path):
    """The same sequence on both servers (already warmed up for the POST): wrk on the intake,
    the workers' RSS and boot count, then a warm-up and wrk on the page GET, and the boot
    count again."""
    intake = wrk(server.base + path, args, args.duration, script)
    rss = server.worker_rss_kib()
    boots_after_intake = server.boots()
    warm_up(server.base + path, args)
    page = wrk(server.base + path, args, args.duration)
    return intake, rss, boots_after_intake, page, server.boots()


# ---------------------------------------------------------------- helpers


def session_and_token(base: str) -> tuple[str, str, int]:
    """The portal_session cookie, the CSRF token of the report form, and the page's size."""
    with opener().open(base + REPORT_PATH, timeout=10) as response:
        html = response.read()
        cookies = http.cookies.SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    if "portal_session" not in cookies:
        raise SystemExit("the report page set no portal_session cookie")
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        rb'value="([^"]+)"[^>]*name="csrf_token"', html)
    if match is None:
        raise SystemExit("no csrf_token in the report form")
    return f"portal_session={cookies['portal_session'].value}", match.group(1).decode(), len(html)


def post_once(url: str, body: str, cookie: str) -> int:
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    try:
        with opener().open(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def count_rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608 - table names are constants of this script


def static_template(size: int) -> str:
    """A static HTML page, without any Jinja syntax, that renders to exactly ``size`` bytes
    (ASCII): Jinja drops the file's final newline, so the file holds one more."""
    head = ("<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
            "<title>Report</title><link rel=\"stylesheet\" href=\"/static/site.css\"></head>\n"
            "<body><main><h1>Report a web address</h1>\n")
    tail = "</main></body>\n</html>\n"
    paragraph = ("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
                 "tempor incididunt ut labore et dolore magna aliqua.</p>\n")
    body = paragraph * ((size - len(head) - len(tail)) // len(paragraph) + 1)
    return head + body[: max(0, size - len(head) - len(tail))] + tail + "\n"


def lua_script(path: Path, body: str, cookie: str) -> Path:
    assert "]==]" not in body + cookie
    path.write_text(LUA.format(body=body, cookie=cookie))
    return path


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="10s", help="wrk duration of each run (default 10s)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of wrk warm-up before each run, 0 for none (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="GUNICORN_WORKERS (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        base = Path(tmp)
        instance = base / "instance"
        generate(instance / "keys")
        ours_env = {
            "PORTAL_INSTANCE_PATH": str(instance),
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
            "PORTAL_RATELIMIT_ENABLED": "false",
        }

        # ---- ours: intake, memory, then the page
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration} --latency "
              f"(warm-up {args.warmup}s each); gunicorn {GUNICORN_CONF.relative_to(ROOT)}, "
              f"GUNICORN_WORKERS={args.workers}", flush=True)
        ours = start_gunicorn("ours", base, GUNICORN_CONF, "wsgi:app", ROOT, ours_env,
                              "/healthz", args.workers)
        try:
            cookie, token, page_size = session_and_token(ours.base)
            body = urllib.parse.urlencode({**FORM, "csrf_token": token})
            script = lua_script(base / "intake.lua", body, cookie)
            first = post_once(ours.base + REPORT_PATH, body, cookie)
            if first != 200:
                raise SystemExit(f"a single report POST answered {first}, not 200")
            database = instance / "portal.db"
            warm_up(ours.base + REPORT_PATH, args, script)
            outbox_before = count_rows(database, "outbox")
            receipts_before = count_rows(database, "receipt_status")
            ours_intake, ours_rss, boots_after_intake, ours_page, boots_after_page = measure(
                ours, REPORT_PATH, args, script)
        finally:
            ours_exit = ours.stop()
        # Counted once gunicorn has finished every request in flight.
        outbox_rows = count_rows(database, "outbox") - outbox_before
        receipt_rows = count_rows(database, "receipt_status") - receipts_before
        print(f"ours: stopped (exit {ours_exit})", flush=True)

        # ---- bare: same wrk commands against a tiny Flask app
        bare_dir = base / "bare"
        (bare_dir / "templates").mkdir(parents=True)
        bare_db = bare_dir / "bare.db"
        (bare_dir / "bare_app.py").write_text(BARE_APP.format(database=str(bare_db)))
        (bare_dir / "templates" / "page.html").write_text(static_template(page_size))
        bare_conf = bare_dir / "gunicorn_bare.conf.py"
        bare_conf.write_text(BARE_CONF.format(conf=str(GUNICORN_CONF)))
        # The table exists before any worker starts, so workers never race to create it.
        create = ("import bare_app\n"
                  "bare_app.metadata.create_all(bare_app.engine)\n"
                  "with bare_app.engine.connect() as c:\n"
                  "    print(c.exec_driver_sql('PRAGMA journal_mode').scalar())\n")
        mode = subprocess.run([sys.executable, "-c", create], cwd=bare_dir, capture_output=True,
                              text=True, check=True).stdout.strip()
        assert mode == "wal", mode
        bare = start_gunicorn("bare", base, bare_conf, "bare_app:app", bare_dir, {}, BARE_PATH,
                              args.workers)
        try:
            with opener().open(bare.base + BARE_PATH, timeout=10) as response:
                bare_page_size = len(response.read())
            first = post_once(bare.base + BARE_PATH, body, cookie)
            if first != 200:
                raise SystemExit(f"a single bare POST answered {first}, not 200")
            warm_up(bare.base + BARE_PATH, args, script)
            bare_before = count_rows(bare_db, "reports")
            bare_intake, bare_rss, bare_boots_after_intake, bare_page, bare_boots_after_page = \
                measure(bare, BARE_PATH, args, script)
        finally:
            bare_exit = bare.stop()
        bare_rows = count_rows(bare_db, "reports") - bare_before
        print(f"bare: stopped (exit {bare_exit})", flush=True)

    # ---- the table
    def row(name: str, a: WrkResult, b: WrkResult) -> None:
        ratio = a.rps / b.rps
        print(f"{name:22} {a.rps:10.1f} {a.p99_ms:9.2f} {b.rps:10.1f} {b.p99_ms:9.2f} "
              f"{ratio:7.2f}  {'met' if ratio >= TARGET_RATIO else 'NOT met'}")

    print()
    print(f"{'':22} {'ours req/s':>10} {'p99 ms':>9} {'bare req/s':>10} {'p99 ms':>9} "
          f"{'ratio':>7}  target >= {TARGET_RATIO}")
    row("report intake (POST)", ours_intake, bare_intake)
    row("report page (GET)", ours_page, bare_page)
    print()
    print(f"page size: ours {page_size} B, bare template {bare_page_size} B")
    print(f"intake, ours: wrk requests {ours_intake.requests}, non-2xx {ours_intake.non_2xx}, "
          f"socket errors {ours_intake.socket_errors}; page GET non-2xx {ours_page.non_2xx}")
    print(f"intake, ours: rows added during the run: outbox {outbox_rows}, receipt_status "
          f"{receipt_rows} (wrk counts no request still in flight when it stops: at most "
          f"{args.connections} more)")
    print(f"intake, bare: wrk requests {bare_intake.requests}, non-2xx {bare_intake.non_2xx}, "
          f"socket errors {bare_intake.socket_errors}, rows {bare_rows}; "
          f"page GET non-2xx {bare_page.non_2xx}")
    rss_ours = ", ".join(f"pid {pid} {mib(kib)}" for pid, kib in ours_rss.items())
    rss_bare = ", ".join(f"pid {pid} {mib(kib)}" for pid, kib in bare_rss.items())
    print(f"worker RSS after intake (MiB): ours {rss_ours} (total {mib(sum(ours_rss.values()))}); "
          f"bare {rss_bare} (total {mib(sum(bare_rss.values()))})")
    print(f"worker recycling (max_requests) during intake / page runs: ours "
          f"{boots_after_intake - ours.workers_booted_at_start} / "
          f"{boots_after_page - boots_after_intake}, bare "
          f"{bare_boots_after_intake - bare.workers_booted_at_start} / "
          f"{bare_boots_after_page - bare_boots_after_intake} new workers")
    problems = []
    if ours_intake.non_2xx or bare_intake.non_2xx or ours_page.non_2xx or bare_page.non_2xx:
        problems.append("some responses were not 2xx/3xx")
    if not (ours_intake.requests <= outbox_rows <= ours_intake.requests + args.connections
            and receipt_rows == outbox_rows):
        problems.append("ours: stored rows do not match the requests")
    if not bare_intake.requests <= bare_rows <= bare_intake.requests + args.connections:
        problems.append("bare: stored rows do not match the requests")
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
