"""HTTP throughput and latency under gunicorn, measured with wrk, against bare Flask baselines.

    python tests/benchmarks/bench_http.py [--duration 6s] [--rounds 5] [--workers N] [--keep-alive]
        [--database postgresql]

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
4. The resident set size (VmRSS) of every gunicorn worker right after the intake runs.

Both servers run at the same time and take turns: each round runs wrk once against each (in
alternating order), so that a change in the machine's load during the run touches both sides
alike; the ratio given is the median of the rounds' ratios, and every round is printed. Five
rounds of 6 s take the time three of 10 s took, and their median moves less with the load of
a shared machine (single rounds moved by more than +-0.05 there).

Each request comes on a new connection (``Connection: close``), as nginx sends them with
``infra/nginx/portal.conf`` (no upstream keep-alive). With wrk's 8 connections kept alive
instead (``--keep-alive``), each stays with whichever worker accepted it, and in about one run
of three one worker held all 8 while the other idled, halving that run's figure: the share
of CPU time each worker used is printed for every run, so such a run can be seen.

With ``--database postgresql`` both use one PostgreSQL server started for the run (fsync on),
each in its own database, instead of SQLite files.

Both servers use ``infra/gunicorn.conf.py`` (workers, gthread, threads, keep-alive, worker
recycling, logging, libraries imported in the master, the garbage collector's freeze once a
worker has built its app); the bare one loads that file too, minus its ``on_starting``,
``on_reload`` and ``post_fork`` hooks, which build Portal's app. Rate limits are off; the key
pair is generated for the run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookies
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from portal.forwarding.keyring import generate

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.ports import free_port  # noqa: E402
from tests.postgres import postgres_server  # noqa: E402

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

engine = create_engine({database_url!r})

if engine.dialect.name == "sqlite":
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

    def cpu_ticks(self) -> dict[int, int]:
        """User + system CPU time of each worker, in clock ticks."""
        ticks = {}
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks[pid] = int(fields[11]) + int(fields[12])
        return ticks

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


def clean_environment() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE is dropped: an installed package (as in infra/Containerfile) has
    # its bytecode compiled, so a worker that max_requests starts does not compile the sources.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PORTAL_", "GUNICORN_")) and k != "PYTHONDONTWRITEBYTECODE"}


def default_workers() -> int:
    """The number of workers infra/gunicorn.conf.py gives this machine when not told."""
    done = subprocess.run(
        [sys.executable, "-c", "import runpy, sys; print(runpy.run_path(sys.argv[1])['workers'])",
         str(GUNICORN_CONF)], env=clean_environment(), capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def start_gunicorn(name: str, folder: Path, conf: Path, target: str, cwd: Path,
                   env: dict[str, str], ready_path: str, workers: int,
                   threads: int | None = None) -> Server:
    port = free_port()
    env = clean_environment() | env
    env.update({"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)})
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
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
    cpu_shares: tuple[float, ...] = ()  # each worker's share of the workers' CPU time

    def shares(self) -> str:
        return "/".join(f"{share:.0%}" for share in self.cpu_shares) or "-"


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


def wrk(url: str, args: argparse.Namespace, duration: str, script: Path | None = None,
        server: Server | None = None) -> WrkResult:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}", "--latency"]
    if not args.keep_alive:
        command += ["-H", "Connection: close"]
    if script is not None:
        command += ["-s", str(script)]
    before = server.cpu_ticks() if server else {}
    done = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result = parse_wrk(done.stdout)
    if server:
        used = [ticks - before[pid] for pid, ticks in server.cpu_ticks().items() if pid in before]
        if sum(used) > 0:
            result.cpu_shares = tuple(sorted((n / sum(used) for n in used), reverse=True))
    return result


def warm_up(url: str, args: argparse.Namespace, script: Path | None = None) -> None:
    if args.warmup > 0:
        wrk(url, args, f"{args.warmup}s", script)
        time.sleep(1)  # requests still in flight when the warm-up ended finish first


@dataclass
class Side:
    """One server under test: its URL path, and the results of its runs."""

    server: Server
    path: str
    intake: list[WrkResult]
    page: list[WrkResult]


def rounds(sides: list[Side], kind: str, args: argparse.Namespace, script: Path | None) -> None:
    """``args.rounds`` rounds of one wrk run on each side, the order alternating."""
    for number in range(args.rounds):
        order = sides if number % 2 == 0 else sides[::-1]
        for side in order:
            result = wrk(side.server.base + side.path, args, args.duration, script, side.server)
            getattr(side, kind).append(result)
            print(f"  round {number + 1} {kind:6} {side.server.name:4} {result.rps:9.1f} req/s "
                  f"p99 {result.p99_ms:7.2f} ms  worker CPU {result.shares()}", flush=True)


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


def count_rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()  # noqa: S608 - table names are constants of this script
    finally:
        engine.dispose()


def create_database(server_url: str, name: str) -> str:
    """A new database on the PostgreSQL server at ``server_url``; its URL."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


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


def start_bare(base: Path, page_size: int, workers: int, threads: int | None,
               database_url: str | None) -> tuple[Server, str]:
    bare_dir = base / "bare"
    (bare_dir / "templates").mkdir(parents=True)
    database_url = database_url or f"sqlite:///{bare_dir / 'bare.db'}"
    (bare_dir / "bare_app.py").write_text(BARE_APP.format(database_url=database_url))
    (bare_dir / "templates" / "page.html").write_text(static_template(page_size))
    bare_conf = bare_dir / "gunicorn_bare.conf.py"
    bare_conf.write_text(BARE_CONF.format(conf=str(GUNICORN_CONF)))
    # The table exists before any worker starts, so workers never race to create it.
    create = ("import bare_app\n"
              "bare_app.metadata.create_all(bare_app.engine)\n"
              "if bare_app.engine.dialect.name == 'sqlite':\n"
              "    with bare_app.engine.connect() as c:\n"
              "        assert c.exec_driver_sql('PRAGMA journal_mode').scalar() == 'wal'\n")
    subprocess.run([sys.executable, "-c", create], cwd=bare_dir, check=True)
    return start_gunicorn("bare", base, bare_conf, "bare_app:app", bare_dir, {}, BARE_PATH,
                          workers, threads), database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="6s", help="wrk duration of each run (default 6s)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="runs per server and endpoint, taking turns (default 5)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of wrk warm-up before each series, 0 for none (default 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="GUNICORN_WORKERS (default: infra/gunicorn.conf.py's, 2 x cores + 1)")
    parser.add_argument("--gunicorn-threads", type=int, default=None,
                        help="GUNICORN_THREADS (default: infra/gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="keep wrk's connections open instead of one per request")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="both servers on SQLite files (default) or on one PostgreSQL "
                             "server started for the run, with fsync on")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    told = args.workers is not None
    args.workers = args.workers or default_workers()

    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        instance = base / "instance"
        generate(instance / "keys")
        ours_url, bare_url = f"sqlite:///{instance / 'portal.db'}", None
        if args.database == "postgresql":
            server = stack.enter_context(postgres_server(durable=True))
            ours_url, bare_url = create_database(server, "ours"), create_database(server, "bare")
        ours_env = {
            "PORTAL_INSTANCE_PATH": str(instance),
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
            "PORTAL_RATELIMIT_ENABLED": "false",
            "PORTAL_DATABASE_URL": ours_url,
        }
        connections = "(kept alive)" if args.keep_alive else '-H "Connection: close"'
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration} --latency "
              f"{connections}, "
              f"{args.rounds} rounds, warm-up {args.warmup}s; gunicorn "
              f"{GUNICORN_CONF.relative_to(ROOT)}, GUNICORN_WORKERS={args.workers}"
              f"{'' if told else ' (its default here)'}"
              f"{f', GUNICORN_THREADS={args.gunicorn_threads}' if args.gunicorn_threads else ''}"
              f"; {args.database}", flush=True)
        ours = start_gunicorn("ours", base, GUNICORN_CONF, "wsgi:app", ROOT, ours_env,
                              "/healthz", args.workers, args.gunicorn_threads)
        bare = None
        try:
            cookie, token, page_size = session_and_token(ours.base)
            body = urllib.parse.urlencode({**FORM, "csrf_token": token})
            script = lua_script(base / "intake.lua", body, cookie)
            bare, bare_url = start_bare(base, page_size, args.workers, args.gunicorn_threads,
                                        bare_url)
            with opener().open(bare.base + BARE_PATH, timeout=10) as response:
                bare_page_size = len(response.read())
            sides = [Side(ours, REPORT_PATH, [], []), Side(bare, BARE_PATH, [], [])]
            for side in sides:
                first = post_once(side.server.base + side.path, body, cookie)
                if first != 200:
                    raise SystemExit(f"{side.server.name}: a single POST answered {first}, not 200")
                warm_up(side.server.base + side.path, args, script)
            outbox_before = count_rows(ours_url, "outbox")
            receipts_before = count_rows(ours_url, "receipt_status")
            bare_before = count_rows(bare_url, "reports")
            boots = {side.server.name: [side.server.workers_booted_at_start] for side in sides}
            rounds(sides, "intake", args, script)
            rss = {side.server.name: side.server.worker_rss_kib() for side in sides}
            for side in sides:
                boots[side.server.name].append(side.server.boots())
                warm_up(side.server.base + side.path, args)
            rounds(sides, "page", args, None)
            for side in sides:
                boots[side.server.name].append(side.server.boots())
        finally:
            exits = {server.name: server.stop() for server in (ours, bare) if server}
        # Counted once gunicorn has finished every request in flight.
        outbox_rows = count_rows(ours_url, "outbox") - outbox_before
        receipt_rows = count_rows(ours_url, "receipt_status") - receipts_before
        bare_rows = count_rows(bare_url, "reports") - bare_before
        print(f"stopped: {exits}", flush=True)

    # ---- the table
    ours_side, bare_side = sides

    def row(name: str, ours_runs: list[WrkResult], bare_runs: list[WrkResult]) -> bool:
        ratios = [a.rps / b.rps for a, b in zip(ours_runs, bare_runs, strict=True)]
        ratio = statistics.median(ratios)
        print(f"{name:22} {statistics.median(a.rps for a in ours_runs):10.1f} "
              f"{statistics.median(a.p99_ms for a in ours_runs):9.2f} "
              f"{statistics.median(b.rps for b in bare_runs):10.1f} "
              f"{statistics.median(b.p99_ms for b in bare_runs):9.2f} {ratio:7.2f}  "
              f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}  "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
        return ratio >= TARGET_RATIO

    print()
    print(f"medians of {args.rounds} rounds; ratio = median of the rounds' ours/bare")
    print(f"{'':22} {'ours req/s':>10} {'p99 ms':>9} {'bare req/s':>10} {'p99 ms':>9} "
          f"{'ratio':>7}  target >= {TARGET_RATIO}")
    row("report intake (POST)", ours_side.intake, bare_side.intake)
    row("report page (GET)", ours_side.page, bare_side.page)
    print()
    ours_requests = sum(r.requests for r in ours_side.intake)
    bare_requests = sum(r.requests for r in bare_side.intake)
    slack = args.connections * args.rounds
    print(f"page size: ours {page_size} B, bare template {bare_page_size} B")
    print(f"intake, ours: wrk requests {ours_requests}, non-2xx "
          f"{sum(r.non_2xx for r in ours_side.intake)}, socket errors "
          f"{sum(r.socket_errors for r in ours_side.intake)}; rows added: outbox {outbox_rows}, "
          f"receipt_status {receipt_rows} (wrk counts no request still in flight when it "
          f"stops: at most {slack} more)")
    print(f"intake, bare: wrk requests {bare_requests}, non-2xx "
          f"{sum(r.non_2xx for r in bare_side.intake)}, socket errors "
          f"{sum(r.socket_errors for r in bare_side.intake)}, rows {bare_rows}")
    for name, kib in rss.items():
        print(f"worker RSS after intake (MiB), {name}: "
              + ", ".join(f"pid {pid} {mib(k)}" for pid, k in kib.items())
              + f" (total {mib(sum(kib.values()))})")
    for name, (start, after_intake, after_page) in boots.items():
        print(f"worker recycling (max_requests), {name}: {after_intake - start} new workers "
              f"during intake, {after_page - after_intake} during the page runs")
    problems = []
    if any(r.non_2xx for side in sides for r in side.intake + side.page):
        problems.append("some responses were not 2xx/3xx")
    if not (ours_requests <= outbox_rows <= ours_requests + slack and receipt_rows == outbox_rows):
        problems.append("ours: stored rows do not match the requests")
    if not bare_requests <= bare_rows <= bare_requests + slack:
        problems.append("bare: stored rows do not match the requests")
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
