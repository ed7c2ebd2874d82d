"""Gunicorn settings for serving ``wsgi:app`` in production: ``gunicorn -c infra/gunicorn.conf.py wsgi:app``.

Every deployment-specific value comes from a ``GUNICORN_*`` environment variable with a default that
suits a single host behind the reverse proxy in ``infra/nginx/portal.conf``.

Privacy rule of the product: no IP address, user agent, query string or report text is ever written
to a log. The access log format below therefore names only the method, the path without its query,
the status, the response size and the duration; ``PrivateLogger`` also strips the client address and
the query string from the few error-log lines in which Gunicorn itself would write them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from gunicorn.glogging import Logger


def _cores() -> int:
    # The CPUs this process may run on (a container's cpuset), not every CPU of the host.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# Where to listen. Loopback by default: only the reverse proxy on the same host talks to Gunicorn.
# The container image sets 0.0.0.0:8000, since there the proxy reaches it over a network.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# Processes: the classic 2 x cores + 1, capped at 8, since each worker holds its own copy of the app
# (WeasyPrint, the themes, the catalogues). Note that Flask-Limiter's default ``memory://`` store
# counts per worker: with several workers set PORTAL_RATELIMIT_STORAGE_URI to a shared store.
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * _cores() + 1, 8)))

# Threads inside each worker (GUNICORN_THREADS): a request waiting on the database, the mail
# server or the captcha verify endpoint no longer blocks the whole process; ``gthread`` also
# keeps idle keep-alive connections off the request threads. Python runs one thread of a
# process at a time, so more cores want more workers, not more threads.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))

# A request taking longer than this (seconds) gets its worker killed and restarted; the slowest
# legitimate request, a sponsor's PDF, takes a few seconds.
timeout = 30
# On SIGTERM/SIGHUP, workers get this long to finish the requests in progress before being killed.
graceful_timeout = 30
# Seconds an idle keep-alive connection from the proxy stays open; a little above nginx's default
# upstream reuse, and short enough not to tie up connections.
keepalive = 5

# Each worker is replaced after about this many requests (jitter spreads the restarts so workers do
# not all restart at once): bounds memory creep from fragmentation or slow leaks in libraries.
# At a few hundred requests a second per worker, 2,000 meant a new worker every few seconds, each
# paying its start and warming its kept pages again (seen as 0.4-0.6 s p99 stalls in bench_http);
# 50,000 still replaces a busy worker every few minutes.
max_requests = 50000
max_requests_jitter = 5000

# Bounds on the request head (Gunicorn's defaults, stated so they are deliberate): the request line
# in bytes, the number of header fields, and the size of one header field. Bodies are bounded by the
# proxy (client_max_body_size) and by the app (PORTAL_MAX_REQUEST_BYTES).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Addresses whose X-Forwarded-Proto (and similar scheme headers) Gunicorn believes: the proxy only.
# The app itself trusts X-Forwarded-For/-Host only with PORTAL_PROXY_HOPS set to the number of proxies.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# The app writes one JSON access line per request to stderr (logger "portal.access": method,
# route pattern, status, milliseconds), so Gunicorn's own access log is off by default: it
# would repeat each line in another format, with the path instead of the route pattern, at a
# cost on every request. GUNICORN_ACCESSLOG=- turns it on, to stdout. Its format has no remote
# address (%(h)s), user agent (%(a)s), referer (%(f)s), request line (%(r)s) or query string
# (%(q)s): %(U)s is the path alone. Fields: time, method, path, status, bytes, milliseconds.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
access_log_format = '%(t)s %(m)s %(U)s %(s)s %(B)s %(M)sms'

# Gunicorn's own messages (start, stop, worker restarts, errors) to stderr.
errorlog = "-"
loglevel = "info"

# False: every worker imports wsgi.py and builds its own app after the fork, so no database
# connection, SQLite file handle, boto3 client or thread is shared between processes, and a HUP
# reloads new code. The one-time work (settings check, secret key file, schema, catalogues) is
# done once by on_starting below, before any worker exists, so workers never race to do it.
preload_app = False

# Gunicorn >= 25.1 opens a control socket under $HOME by default; nothing here uses it.
control_socket_disable = True

# The third-party libraries the app is built from, imported once here in the master, so that
# a worker, forked from it, does not import them again: one that max_requests replaces under
# load serves again after about a fifth of a second instead of one to two, while the others
# carry its traffic. Importing them opens no connection or file and starts no
# thread; Portal's own code is still imported by each worker after the fork, so a HUP loads
# new Portal code, but a new version of one of these libraries needs a full restart.
PRELOADED_LIBRARIES = (
    "flask", "flask_babel", "flask_limiter", "flask_sqlalchemy", "flask_wtf", "jinja2", "wtforms",
    "sqlalchemy.orm", "babel.messages.pofile", "email_validator", "nacl.public", "altcha",
    "prometheus_client", "argon2", "pyotp", "segno", "dns.resolver", "alembic.runtime.migration",
)
for _library in PRELOADED_LIBRARIES:
    with contextlib.suppress(ImportError):
        importlib.import_module(_library)


class PrivateLogger(Logger):
    """Gunicorn's logger, minus the client address and query strings in its error messages.

    Gunicorn writes ``Invalid request from ip=<address>: <the offending request line>`` for
    malformed requests and ``Error handling request <method> <uri with query>`` when a request
    fails outside the app; both are rewritten before they reach any handler.
    """

    CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_redact)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # PATH_INFO is percent-decoded: a %0A in the path must not forge a second log line.
        atoms["U"] = self.CONTROL.sub("?", atoms.get("U") or "-")
        return atoms


def _redact(record: logging.LogRecord) -> bool:
    message = record.msg if isinstance(record.msg, str) else ""
    if message.startswith("Invalid request from ip="):
        record.msg, record.args = "Invalid request rejected (client details not logged)", ()
    elif message.startswith("Error handling request") and isinstance(record.args, tuple):
        record.args = tuple(re.split(r"[?#]", arg, maxsplit=1)[0] if isinstance(arg, str) else arg
                            for arg in record.args)
    return True


logger_class = PrivateLogger


# True in the master once on_starting (or on_reload) has built the app, migrations included.
_prepared = False


def _prepare() -> int:
    """Build the app once in a short-lived process; its exit code."""
    prepare = (
        "import sys\n"
        "from portal.app import create_app\n"
        "from portal.settings import SettingsError\n"
        "try:\n"
        "    create_app()\n"
        "except SettingsError as exc:\n"
        "    sys.exit(str(exc))\n"
    )
    done = subprocess.run([sys.executable, "-c", prepare], check=False)  # noqa: S603 - fixed argv, our own interpreter
    return done.returncode


def on_starting(server) -> None:
    """Build the app once in a short-lived process before any worker starts.

    That validates the settings (a wrong value stops Gunicorn here, with the list of problems,
    instead of making every worker fail to boot in a loop) and does the instance folder's
    first-start work exactly once: the secret key file, the database schema (migrations), the compiled
    catalogues and templates. A separate process keeps the master free of the app and its connections.
    """
    global _prepared
    returncode = _prepare()
    if returncode != 0:
        raise SystemExit(f"portal: the app could not be built (exit {returncode}); see above")
    _prepared = True
    _load_language_data()


def _load_language_data() -> None:
    """Babel's CLDR data for the shipped languages (language names, text direction), loaded once
    here so that no worker spends a tenth of a second unpickling it for its first pages."""
    folder = Path(os.environ.get("PORTAL_TRANSLATIONS_PATH")
                  or Path(__file__).resolve().parent.parent / "translations")
    languages = {"en", *(po.parent.parent.name for po in folder.glob("*/LC_MESSAGES/public.po"))}
    try:
        from babel import Locale

        for code in sorted(languages):
            name = code.replace("-", "_")  # a BCP 47 tag as Babel names it
            Locale.parse(name).get_display_name(name)
    except Exception:  # only a speed-up: a worker loads what it needs itself
        return


def on_reload(server) -> None:
    """On HUP, new code may bring new migrations: prepare once more before the new workers start.
    If that fails, each worker runs the migrations itself and shows why it cannot start."""
    global _prepared
    _prepared = _prepare() == 0
    if not _prepared:
        server.log.error("portal: preparing the app for the reload failed; see above")


def post_fork(server, worker) -> None:
    """In each new worker, before it builds the app: the master has just migrated the database,
    so the worker skips the migrations (its own PORTAL_AUTO_MIGRATE=false)."""
    if _prepared:
        os.environ["PORTAL_AUTO_MIGRATE"] = "false"


def post_worker_init(worker) -> None:
    """Once the worker has built the app: everything it holds so far (libraries, app, themes,
    catalogues) lives as long as the worker, so it is moved out of the garbage collector's
    sight. A full collection then walks only what requests created, instead of some 120,000
    objects for about 0.1 s (seen in a worker answering report POSTs), and the pages of
    memory shared with the master are not written to by the collector."""
    gc.collect()
    gc.freeze()
