"""Logging without anything that identifies a reporter: no IP address, no user agent,
no query string, no form content."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request


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
