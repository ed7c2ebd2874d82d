"""Logging without anything that identifies a reporter: no IP address, no user agent,
no query string, no form content."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

METRICS = {
    "outbox_envelopes": "Sealed envelopes waiting in this edge's outbox",
    "outbox_oldest_age_seconds": "Age of the oldest undelivered envelope, in seconds",
    "transport_backlog": "Envelopes waiting in the transport for the central importer",
}


def metrics_response(health: dict[str, object]) -> Response:
    """Prometheus text format; counts and ages only, nothing about any person or report."""
    registry = CollectorRegistry()
    for key, help_text in METRICS.items():
        value = health.get(key)
        if isinstance(value, int | float):
            Gauge(f"portal_{key}", help_text, registry=registry).set(value)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def configure_logging(app: Flask) -> None:
    # The development server logs each request with the client's address: silence it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    access = logging.getLogger("portal.access")

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        took = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
        route = request.url_rule.rule if request.url_rule else "-"
        access.info("%s %s %s %.1fms", request.method, route, response.status_code, took)
        return response
