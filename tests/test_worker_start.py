"""What makes a gunicorn worker quick to start (infra/gunicorn.conf.py): the master has done the
one-time work, so a worker replaced by max_requests under load is soon serving again; and what
keeps it light to run: the garbage collector no longer walks what the worker built at start.
And without that configuration, workers starting all at once on a fresh database."""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from portal.migrate import ADVISORY_LOCK, head_revision, sqlite_migration_lock
from portal.paths import ROOT
from tests.conftest import SECRET, database_env
from tests.ports import free_ports

GUNICORN_CONF = ROOT / "infra" / "gunicorn.conf.py"


class FakeLog:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str, *args) -> None:
        self.errors.append(message % args)


class FakeServer:
    def __init__(self) -> None:
        self.log = FakeLog()


def test_workers_skip_the_migrations_the_master_ran(monkeypatch):
    # post_fork sets os.environ itself, which monkeypatch would not undo (a later test's app
    # would skip its migrations): the hooks get a copy of the environment.
    monkeypatch.setattr(os, "environ", os.environ.copy())
    monkeypatch.delenv("PORTAL_AUTO_MIGRATE", raising=False)
    conf = runpy.run_path(str(GUNICORN_CONF))
    hooks = conf["on_starting"].__globals__
    monkeypatch.setitem(hooks, "_prepare", lambda: 0)
    server = FakeServer()

    conf["post_fork"](server, None)  # nothing prepared yet: the worker migrates
    assert "PORTAL_AUTO_MIGRATE" not in os.environ
    conf["on_starting"](server)
    assert "PORTAL_AUTO_MIGRATE" not in os.environ  # the master's own environment is as given
    conf["post_fork"](server, None)
    assert os.environ["PORTAL_AUTO_MIGRATE"] == "false"

    # A HUP whose preparation fails: the new workers run the migrations themselves.
    monkeypatch.delenv("PORTAL_AUTO_MIGRATE")
    monkeypatch.setitem(hooks, "_prepare", lambda: 1)
    conf["on_reload"](server)
    conf["post_fork"](server, None)
    assert "PORTAL_AUTO_MIGRATE" not in os.environ
    assert server.log.errors


def test_the_master_imports_the_libraries_but_not_portal():
    conf = runpy.run_path(str(GUNICORN_CONF))
    for name in conf["PRELOADED_LIBRARIES"]:
        assert name in sys.modules, name
        assert not name.startswith("portal")


def test_workers_hide_what_they_built_from_the_garbage_collector():
    import gc

    conf = runpy.run_path(str(GUNICORN_CONF))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        conf["post_worker_init"](None)
        assert gc.get_freeze_count() > 10_000  # the libraries and app of this test process
    finally:
        gc.unfreeze()


def healthz(port: int, timeout: float) -> int:
    # No proxy from the environment: the request must reach gunicorn itself.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def answered_by_all_workers(port: int, workers: int) -> int:
    """/healthz's status, answered while ``workers - 1`` sync workers are each busy reading a
    request that never ends: only a further worker can answer it. (Connections are accepted in
    the order they arrive, so the unfinished ones are taken first.)"""
    held = []
    try:
        for _ in range(workers - 1):
            connection = socket.create_connection(("127.0.0.1", port), timeout=60)
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
            held.append(connection)
        return healthz(port, timeout=120)
    finally:
        for connection in held:
            connection.close()


def test_plain_gunicorn_workers_start_at_once_on_a_fresh_database(instance, tmp_path):
    """`gunicorn -w 4 wsgi:app` without our configuration: each worker migrates a fresh
    database (and makes the secret key) itself, all at once. They must take turns (a lock
    beside the SQLite file; an advisory lock on PostgreSQL), none may die of a table that
    another has just created, and the master must keep running."""
    workers = 4
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "GUNICORN_"))}
    env.update({"PORTAL_INSTANCE_PATH": str(instance), "PORTAL_RATELIMIT_ENABLED": "false",
                **database_env(instance)})
    stderr = tmp_path / "gunicorn.err"
    with stderr.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
             "wsgi:app"], cwd=ROOT, env=env, stdout=err, stderr=err, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"gunicorn exited:\n{stderr.read_text()}"
            with contextlib.suppress(OSError):
                if healthz(port, timeout=5) == 200:
                    break
            assert time.monotonic() < deadline, f"no worker served:\n{stderr.read_text()}"
            time.sleep(0.3)
        try:
            status = answered_by_all_workers(port, workers)
        except OSError as exc:  # a worker that dies drops its connection
            raise AssertionError(f"{exc!r}\n{stderr.read_text()}") from exc
        assert status == 200, stderr.read_text()
        assert server.poll() is None, stderr.read_text()
        log = stderr.read_text()
        for sign in ("already exists", "Worker failed", "Traceback", "Worker exiting"):
            assert sign not in log, log
        assert log.count("Booting worker") == workers, log
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, stderr.read_text()
    finally:
        if server.poll() is None:  # only when something above failed
            server.kill()
            server.wait(timeout=10)

    url = database_env(instance).get("PORTAL_DATABASE_URL") or f"sqlite:///{instance}/portal.db"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    finally:
        engine.dispose()
    assert len((instance / "secret_key").read_text().strip()) >= 32


@contextlib.contextmanager
def migration_lock_held(engine):
    """The lock a migrating process holds, taken here as another process would take it."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            yield
        return
    with sqlite_migration_lock(engine):
        yield


def waits_for_migration_lock(engine, pid: int) -> bool:
    """Whether process ``pid`` (SQLite) or some session (PostgreSQL) is queued for the lock."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return bool(connection.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND objid::bigint = :key AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"key": ADVISORY_LOCK}))
    # Linux lists each flock a process is blocked on as "N: -> FLOCK ADVISORY WRITE <pid> ...".
    return any(line.split()[1:5] == ["->", "FLOCK", "ADVISORY", "WRITE"]
               and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_migration_waits_for_the_one_in_progress(instance, tmp_path):
    """While one process migrates (holds the lock), another one's upgrade waits for it, then
    finds the schema to finish; proven without timing: the waiting process is seen queued for
    the lock, and must not have finished while the lock was held."""
    url = database_env(instance).get("PORTAL_DATABASE_URL") or f"sqlite:///{instance}/portal.db"
    instance.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")},
           "PORTAL_INSTANCE_PATH": str(instance), "PORTAL_SECRET_KEY": SECRET,
           **database_env(instance)}
    engine = create_engine(url)
    output = tmp_path / "upgrade.out"
    try:
        with migration_lock_held(engine), output.open("wb") as out:
            upgrader = subprocess.Popen([sys.executable, "-m", "portal.cli", "db", "upgrade"],
                                        cwd=ROOT, env=env, stdout=out, stderr=out,
                                        stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 120
                while not waits_for_migration_lock(engine, upgrader.pid):
                    assert upgrader.poll() is None, \
                        f"the upgrade did not wait for the lock:\n{output.read_text()}"
                    assert time.monotonic() < deadline, "the upgrade never reached the lock"
                    time.sleep(0.1)
            except BaseException:
                upgrader.kill()
                upgrader.wait(timeout=10)
                raise
        assert upgrader.wait(timeout=120) == 0, output.read_text()
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    finally:
        engine.dispose()
