"""What makes a gunicorn worker quick to start (infra/gunicorn.conf.py): the master has done the
one-time work, so a worker replaced by max_requests under load is soon serving again."""

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
