"""The development server of ``portal demo``, logging nothing that identifies a client.

werkzeug's request handler starts every log line with the client's address, and for a
malformed request it logs the raw request line too (query string included), at error level,
so that even with werkzeug's request lines silenced (``configure_logging``) the address of
anyone sending a bad request was written. ``PrivateRequestHandler`` keeps werkzeug's server
and its ``REMOTE_ADDR`` (which the rate limits and ``monitoring_only`` read) and changes only
what is logged.
"""

from __future__ import annotations

import logging
import re

from werkzeug.serving import WSGIRequestHandler

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The format http.server's send_error logs with; its message quotes the request line.
SEND_ERROR_FORMAT = "code %d, message %s"


class PrivateRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, its log lines without the client's address, the query string or
    the text of a malformed request line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # ``command`` and ``path`` are unset when the request line could not be parsed.
        method = getattr(self, "command", None) or "-"
        path = (getattr(self, "path", None) or "-").partition("?")[0]
        self.log("info", '"%s %s" %s %s', method, CONTROL.sub("?", path), code, size)

    def log_error(self, format: str, *args: object) -> None:
        if format == SEND_ERROR_FORMAT:
            format, args = "code %d", args[:1]
        self.log("error", format, *args)

    def log(self, type: str, message: str, *args: object) -> None:
        getattr(logging.getLogger("werkzeug"), type)(
            f"[{self.log_date_time_string()}] {message}", *args)
