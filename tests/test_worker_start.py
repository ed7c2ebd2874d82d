"""What makes a gunicorn worker quick to start (infra/gunicorn.conf.py): the master has done the
one-time work, so a worker replaced by max_requests under load is soon serving again; and what
keeps it light to run: the garbage collector no longer walks what the worker built at start."""

from __future__ import annotations

import os
import runpy
import sys

from portal.paths import ROOT

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
