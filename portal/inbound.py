"""What a request must be before a view reads it: for a host this deployment serves, with a body
the forms can read, and with parameters that cannot break a database query.

Hosts: Flask's ``TRUSTED_HOSTS``, filled with the host names of the portals' manifests and
``PORTAL_TRUSTED_HOSTS``. Flask checks the host while it makes the request's URL adapter, before
routing, so nothing (the 308 of a missing trailing slash included) is ever built from a host
that is not listed: such a request gets a plain 400. Behind a proxy (``PORTAL_PROXY_HOPS``)
ProxyFix has already replaced the host with X-Forwarded-Host, so that is the host checked.

Bodies: every form of the app is an HTML form, which browsers send as
``application/x-www-form-urlencoded``. Anything else sent to a form's route gets 415 before
any form is built; Flask-WTF would otherwise read a JSON body or a file part into the fields.

Parameters: no control character in the path or the query string, no NUL in a back-office
form (PostgreSQL cannot store one in text), and ``<int:...>`` in a route bounded by the
database's INTEGER, so a larger number names no record (404) instead of overflowing the driver.
"""

from __future__ import annotations

import re

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter

from portal.settings import Settings

# PostgreSQL's INTEGER, the type of every id column; SQLite's is wider.
MAX_ID = 2**31 - 1
FORM_TYPE = "application/x-www-form-urlencoded"
# The blueprints whose POST routes are HTML forms, and those among them of the back office.
FORM_BLUEPRINTS = frozenset({"reporting", "staff", "accounts", "sponsors"})
BACK_OFFICE = frozenset({"staff", "accounts", "sponsors"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class IdConverter(IntegerConverter):
    """Werkzeug's ``int`` converter, at most ``MAX_ID`` unless a route says otherwise."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def record_id(text: str) -> int:
    """An id from a query string or a form, for ``args.get(name, type=record_id)``: a
    ValueError (so the default) unless it is a number the id columns can hold."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
        raise ValueError(text)
    return int(text)


def trusted_hosts(settings: Settings, portal_hosts: list[str]) -> list[str]:
    return sorted({*settings.trusted_hosts, *portal_hosts})


def _has_control(values) -> bool:
    return any(_CONTROL.search(key) or _CONTROL.search(value) for key, value in values)


def _readable_body() -> bool:
    """A urlencoded form, or no body at all (a bare button some clients send without a type)."""
    if request.mimetype == FORM_TYPE:
        return True
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return not request.mimetype and not request.content_length and not chunked


def check_request() -> None:
    if _CONTROL.search(request.path) or _has_control(request.args.items(multi=True)):
        abort(400)
    if request.method in BODY_METHODS and request.blueprint in FORM_BLUEPRINTS:
        if not _readable_body():
            abort(415)
        if request.blueprint in BACK_OFFICE and any(
                "\x00" in key or "\x00" in value for key, value in request.form.items(multi=True)):
            abort(400)


def configure_inbound(app: Flask, settings: Settings) -> None:
    """Before any blueprint is registered: its ``<int:...>`` rules take the bounded converter."""
    app.url_map.converters["int"] = IdConverter
    app.config["TRUSTED_HOSTS"] = trusted_hosts(
        settings, list(app.extensions["portal.tenancy"].hosts))
    app.before_request(check_request)
