"""Rate limits shared through a real Redis server, as several gunicorn workers or servers need.

Why the workers are subprocesses: Flask-Limiter's ``limiter`` is a module-level singleton in
portal.security, and each ``init_app`` replaces its one storage. Two apps created in one Python
process therefore count in the same (last configured) storage whatever their settings say, so
alternating between them would show a shared limit even with ``memory://``, and a test built that
way could not fail. ``test_two_apps_in_one_process_share_one_limiter`` pins that fact. Here each
"worker" is its own Python process, driven line by line over stdin/stdout, like a gunicorn worker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pickle
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.app import create_app
from portal.forwarding.keyring import generate
from tests.conftest import CSRF_RE, ROOT, make_settings, need, submit_report

ADDRESS = "192.0.2.44"
# The rate-limit key salt is derived from the secret key, so every worker must share it.
SHARED_SECRET = "shared-secret-for-every-worker-0123456789abcdef"
TIMEOUT = 20.0

# One worker: builds the app from pickled Settings, prints "ready", then for each JSON line
# {"url": ..., "form": {...}} fetches the form's CSRF token and posts it, printing the status.
WORKER = """
import json, pickle, re, sys
from portal.app import create_app

with open(sys.argv[1], "rb") as handle:
    settings = pickle.load(handle)
csrf_re = re.compile(sys.argv[3])
client = create_app(settings).test_client()
client.environ_base["REMOTE_ADDR"] = sys.argv[2]
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    page = client.get(request["url"])
    match = csrf_re.search(page.get_data(as_text=True))
    token = match.group(1) if match else ""
    response = client.post(request["url"], data={**request["form"], "csrf_token": token})
    print(response.status_code, flush=True)
"""

REPORT = {
    "url": "/demo/en/report",
    "form": {"urls": "http://site.example.test/page", "content_type": "images",
             "where_found": "website", "description": "", "contact_email": ""},
}
STATUS = {"url": "/demo/en/status", "form": {"receipt": "1" * 16}}


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real redis-server, reachable only through a unix socket (no TCP port at all)."""
    server = shutil.which("redis-server")
    need(server is not None, "redis-server is not installed")
    need(importlib.util.find_spec("redis") is not None, "the redis Python client is not installed")
    import redis

    directory = tmp_path_factory.mktemp("redis")
    socket_path = directory / "redis.sock"
    log = directory / "redis.log"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(directory),
         "--logfile", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited with {process.returncode}: {_tail(log)}")
            try:
                with redis.Redis(unix_socket_path=str(socket_path)) as connection:
                    connection.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not accept connections: {_tail(log)}")
                time.sleep(0.05)
        yield socket_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()


@pytest.fixture
def redis_connection(redis_socket: Path) -> Iterator:
    """A client of the shared server, emptied before each test so every test starts uncounted."""
    import redis

    with redis.Redis(unix_socket_path=str(redis_socket)) as connection:
        connection.flushall()
        yield connection


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no output)"


class Worker:
    """One app in its own Python process, like one gunicorn worker."""

    def __init__(self, directory: Path, name: str, storage_uri: str) -> None:
        instance = directory / f"instance_{name}"
        generate(instance / "keys")  # as the `instance` fixture does, one key pair per worker
        settings = make_settings(instance, env={
            "PORTAL_RATELIMIT_ENABLED": "true",
            "PORTAL_RATELIMIT_STORAGE_URI": storage_uri,
            "PORTAL_RATELIMIT_REPORT": "3 per minute",
            "PORTAL_RATELIMIT_STATUS": "5 per minute",
            "PORTAL_SECRET_KEY": SHARED_SECRET,
        })
        settings_file = directory / f"settings_{name}.pickle"
        settings_file.write_bytes(pickle.dumps(settings))
        self.name = name
        self.log = directory / f"worker_{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(settings_file), ADDRESS, CSRF_RE.pattern],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )
        self.selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def _line(self) -> str:
        assert self.process.stdout is not None
        if not self.selector.select(TIMEOUT):
            pytest.fail(f"worker {self.name} did not answer within {TIMEOUT} s: {_tail(self.log)}")
        line = self.process.stdout.readline()
        if not line:
            pytest.fail(f"worker {self.name} exited: {_tail(self.log)}")
        return line.strip()

    def wait_ready(self) -> None:
        assert self._line() == "ready"

    def post(self, request: dict) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self._line())

    def stop(self) -> None:
        """Close stdin: the worker's loop ends and the process exits."""
        self.selector.close()
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # the worker may have died already
            self.process.stdin.close()

    def wait(self) -> None:
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@contextlib.contextmanager
def running(directory: Path, storage_uri: str, *names: str) -> Iterator[list[Worker]]:
    """Start workers side by side (their imports overlap); stop them all at the end."""
    workers: list[Worker] = []
    try:
        for name in names:
            workers.append(Worker(directory, name, storage_uri))
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.wait()


@pytest.fixture(scope="module")
def redis_workers(redis_socket: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    """Two workers sharing the Redis server, like two gunicorn workers or two servers."""
    with running(tmp_path_factory.mktemp("workers"), f"redis+unix://{redis_socket}", "a", "b") as workers:
        yield workers


def _alternate(workers: list[Worker], count: int) -> list[int]:
    return [workers[i % len(workers)].post(REPORT) for i in range(count)]


def test_limits_are_shared_between_two_app_processes(redis_workers, redis_connection):
    # a, b, a succeed; the 4th (b) and every later one, on either worker, is refused.
    assert _alternate(redis_workers, 6) == [200, 200, 200, 429, 429, 429]


def test_redis_keys_hold_no_address(redis_workers, redis_connection):
    worker = redis_workers[0]
    assert worker.post(REPORT) == 200
    assert worker.post(STATUS) == 200
    keys = redis_connection.keys("*")
    assert len(keys) >= 2, keys
    for key in keys:
        assert ADDRESS.encode() not in key, key
        assert b"demo:" in key, key  # the portal and a salted hash, as portal.security builds it
        # Neither the name nor the stored value (timestamps) holds the address.
        assert ADDRESS.encode() not in (redis_connection.dump(key) or b""), key
        ttl = redis_connection.ttl(key)
        assert 0 < ttl <= 60, (key, ttl)


def test_memory_storage_is_per_process(tmp_path):
    with running(tmp_path, "memory://", "a", "b") as workers:
        # Each process counts on its own: 3 each, so 6 succeed; hence several workers need Redis.
        assert _alternate(workers, 6) == [200] * 6
        assert _alternate(workers, 2) == [429, 429]


def test_two_apps_in_one_process_share_one_limiter(tmp_path):
    """Why the tests above use subprocesses: in one process the second app takes over the storage.

    If this starts failing, Flask-Limiter or portal.security now keeps a limiter per app, and two
    in-process apps could stand for two workers.
    """
    apps = []
    for name in ("a", "b"):
        instance = tmp_path / f"instance_{name}"
        generate(instance / "keys")
        settings = make_settings(instance, env={
            "PORTAL_RATELIMIT_ENABLED": "true", "PORTAL_RATELIMIT_STORAGE_URI": "memory://",
            "PORTAL_RATELIMIT_REPORT": "3 per minute", "PORTAL_SECRET_KEY": SHARED_SECRET,
        })
        apps.append(create_app(settings))
    assert apps[0].extensions["limiter"] == apps[1].extensions["limiter"]
    clients = [app.test_client() for app in apps]
    for client in clients:
        client.environ_base["REMOTE_ADDR"] = ADDRESS
    codes = [submit_report(clients[i % 2]).status_code for i in range(4)]
    # Separate memory:// stores would accept all four; one shared store refuses the 4th.
    assert codes == [200, 200, 200, 429]
