"""A real PostgreSQL server in a temporary folder, started by the test fixtures."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tests.ports import free_port


def find_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@contextmanager
def postgres_server(durable: bool = False):
    """Yields the server's URL. Tests run it without fsync; ``durable`` keeps PostgreSQL's
    default (every commit flushed to disk), for benchmarks of durable writes."""
    bin_dir = find_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    as_root = os.geteuid() == 0
    user = pwd.getpwnam("postgres") if as_root else None
    if user:
        os.chown(root, user.pw_uid, user.pw_gid)

    def run(*args: str) -> None:
        command = [str(bin_dir / args[0]), *args[1:]]
        if user:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    port = free_port()
    data = root / "data"
    run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
        "--locale=C.UTF-8")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    run("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
        options if durable else f"{options} -c fsync=off", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
