"""Logs and metrics without anything that identifies a reporter: no IP address, no user
agent, no URL or query string, no form content. Log lines are JSON, one per line; metrics are
in the Prometheus text format and hold counts, ages and route patterns only."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, Response, abort, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Per-process counters (each gunicorn worker keeps its own; sum them in Prometheus).
REGISTRY = CollectorRegistry()
REQUESTS = Counter("portal_http_requests", "Requests by route pattern, method and status",
                   ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("portal_http_request_seconds", "Time to answer, by route pattern",
                    ["route"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
REPORTS = Counter("portal_reports_accepted", "Reports accepted at this edge, by portal",
                  ["portal"], registry=REGISTRY)

GAUGES = {
    "outbox_envelopes": "Sealed envelopes waiting in this edge's outbox",
    "outbox_oldest_age_seconds": "Age of the oldest undelivered envelope, in seconds",
    "transport_backlog": "Envelopes waiting in the transport for the central importer",
    "import_lag_seconds": "From receipt at the edge to import, for the newest imported report",
    "queue_oldest_age_seconds": "Age of the oldest open report in the analysts' queue",
    "queue_open_reports": "Open reports in the analysts' queue",
}


def metrics_response(health: dict[str, object]) -> Response:
    """The process's counters, plus gauges read from the database at scrape time."""
    gauges = CollectorRegistry()
    for key, help_text in GAUGES.items():
        value = health.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            Gauge(f"portal_{key}", help_text, registry=gauges).set(value)
    body = generate_latest(REGISTRY) + generate_latest(gauges)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def monitoring_only(view: Callable) -> Callable:
    """Serve ``view`` only to a client whose address is in ``PORTAL_MONITORING_NETWORKS``
    (this host alone by default); anyone else gets a 403.

    The address is ``request.remote_addr``: the peer itself, or, behind ``PORTAL_PROXY_HOPS``
    proxies, the client address they pass on. So the rule is the one the example proxy
    (infra/nginx/portal.conf) applies to the same paths with ``allow``/``deny``, and it holds
    without a proxy too. Networks rather than a bearer token: a scraper on the host, or on
    the monitoring network of a container platform, needs no secret handed to it.
    """

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not is_monitoring_client():
            abort(403)
        return view(*args, **kwargs)

    return guarded


def is_monitoring_client() -> bool:
    """Whether this request comes from an address in ``PORTAL_MONITORING_NETWORKS``."""
    networks = current_app.extensions["portal.settings"].monitoring_networks
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:  # no address, or a unix socket's name
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack listener's form of an IPv4 peer
    return any(address in network for network in networks)


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``fields`` given."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = record.exc_info[0].__name__ if record.exc_info[0] else "error"
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment (servers and tests may swap it)."""

    portal_json = True

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _AccessLog:
    """The access line of every request, through the ``portal.access`` logger.

    While that logger's only way out is our own stderr handler (the default), the line is
    written straight to stderr in the very format JsonFormatter gives it: building a LogRecord
    and passing it through the logging machinery cost three times as much as the line itself,
    on every request. Any other handler or filter, or a level set on ``portal.access``, gets
    the record the usual way."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("portal.access")
        self.portal = logging.getLogger("portal")
        self._middles: dict[tuple[str, str, int], str] = {}

    def _direct(self) -> _StderrHandler | None:
        logger, portal = self.logger, self.portal
        if (logger.handlers or logger.filters or not logger.propagate or portal.filters
                or len(portal.handlers) != 1 or portal.propagate):
            return None
        handler = portal.handlers[0]
        if (type(handler) is not _StderrHandler or handler.filters
                or type(handler.formatter) is not JsonFormatter
                or handler.level > logging.INFO):
            return None
        return handler

    def write(self, method: str, route: str, status: int, ms: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        handler = self._direct()
        if handler is None:
            self.logger.handle(self.logger.makeRecord(
                self.logger.name, logging.INFO, "", 0, "request", (), None,
                extra={"fields": {"method": method, "route": route, "status": status,
                                  "ms": ms}}))
            return
        # Everything but the time is the same for every request to one route with one
        # method and status: encoded once (for a bounded number of them).
        key = (method, route, status)
        middle = self._middles.get(key)
        if middle is None:
            middle = json.dumps({"logger": self.logger.name, "msg": "request", "method": method,
                                 "route": route, "status": status}, ensure_ascii=False)[1:-1]
            if len(self._middles) < 4096:
                self._middles[key] = middle
        line = f'{{"ts": "{_timestamp(time.time())}", "level": "info", {middle}, "ms": {ms!r}}}\n'
        with handler.lock:
            stream = sys.stderr
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stderr, as logging tolerates
                pass


# The metric children of each (route, method, status): labels() builds and looks them up
# under a lock on every call. Methods outside this list are counted as "other", so that a
# client inventing methods cannot grow the metrics without bound.
_CHILDREN: dict[tuple[str, str, int], tuple] = {}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _children(route: str, method: str, status: int) -> tuple:
    key = (route, method, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = (REQUESTS.labels(route, method, str(status)),
                                     LATENCY.labels(route))
    return children


def configure_logging(app: Flask) -> None:
    # The development server logs each request with the client's address: silence it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    portal_logger = logging.getLogger("portal")
    if not any(getattr(h, "portal_json", False) for h in portal_logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        portal_logger.addHandler(handler)
        portal_logger.setLevel(logging.INFO)
        portal_logger.propagate = False
    access = _AccessLog()

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        took = time.perf_counter() - g.get("request_started", time.perf_counter())
        rule = request.url_rule
        route = rule.rule if rule else "-"
        method, status = request.method, response.status_code
        if method not in _METHODS:
            method = "other"
        counter, latency = _children(route, method, status)
        counter.inc()
        latency.observe(took)
        access.write(method, route, status, round(took * 1000, 1))
        return response
