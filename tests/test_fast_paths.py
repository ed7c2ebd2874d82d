"""The request path's cheaper ways of doing what Flask, itsdangerous and logging do, each
compared with the library's own way: the session cookie and its Vary header, the signing
serializer, ``ensure_sync``, the access line and the security headers."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time

import pytest
from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.app import PortalFlask
from portal.observability import JsonFormatter, _AccessLog, configure_logging
from portal.security import STATIC_HEADERS, SecurityHeaders
from portal.signing import PortalSessionInterface, _PortalSerializer, _SessionJSON, csrf_serializer

RAW = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "9f3c1a7e52b04d6e8a1f0c3b7d2e6a4f91c8b0d3"  # like a real one: zlib cannot shorten it

# ---------------------------------------------------------------- the session cookie


def _session(data: dict, *, modified: bool, accessed: bool = True,
             permanent: bool = False) -> SecureCookieSession:
    session = SecureCookieSession(data)
    session.permanent = permanent  # sets modified: set it afterwards
    session.modified, session.accessed = modified, accessed
    return session


SESSIONS = {
    "new, with a CSRF token": lambda: _session({"csrf_token": RAW}, modified=True),
    "several keys": lambda: _session({"csrf_token": RAW, "user": 7, "lang": "fr"},
                                     modified=True),
    "read, not changed": lambda: _session({"csrf_token": RAW}, modified=False),
    "neither read nor changed": lambda: _session({"csrf_token": RAW}, modified=False,
                                                 accessed=False),
    "emptied": lambda: _session({}, modified=True),
    "empty, untouched": lambda: _session({}, modified=False, accessed=False),
    "permanent, changed": lambda: _session({"user": 7}, modified=True, permanent=True),
    "permanent, unchanged": lambda: _session({"user": 7}, modified=False, permanent=True),
}
VARY = [None, "Accept-Language", "Cookie", "accept-language, cookie", "Origin, Accept"]
CONFIGS = [
    {},
    {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_SAMESITE": "Strict",
     "SESSION_COOKIE_DOMAIN": "portal.example.test", "SESSION_COOKIE_PATH": "/x"},
    {"SESSION_COOKIE_PARTITIONED": True, "SESSION_COOKIE_HTTPONLY": False,
     "SESSION_REFRESH_EACH_REQUEST": False},
]


def _saved(interface, app: Flask, make_session, vary: str | None) -> dict:
    response = app.response_class("page")
    if vary:
        response.headers["Vary"] = vary
    interface.save_session(app, make_session(), response)
    cookies = response.headers.getlist("Set-Cookie")
    values = []
    for cookie in cookies:
        value, _, attributes = cookie.partition(";")
        # The expiry of a permanent session is "now + lifetime": drop the second it was made.
        attributes = "; ".join(part for part in attributes.split("; ")
                               if not part.strip().startswith("Expires="))
        values.append((value.split("=", 1)[1], attributes))
    return {"vary": response.headers.getlist("Vary"), "cookies": values}


@pytest.mark.parametrize("config", CONFIGS)
def test_save_session_agrees_with_flask(config):
    """Every kind of session, with and without a Vary header already there: the same Vary
    header and the same cookie attributes as Flask's own interface, and cookies each side
    reads back to the same session."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="a key for this test", **config)
    ours, flasks = PortalSessionInterface(), SecureCookieSessionInterface()
    for name, make_session in SESSIONS.items():
        for vary in VARY:
            mine, theirs = _saved(ours, app, make_session, vary), _saved(flasks, app, make_session, vary)
            assert mine["vary"] == theirs["vary"], (name, vary)
            assert [a for _, a in mine["cookies"]] == [a for _, a in theirs["cookies"]], (name, vary)
            for (value, _), (other, _) in zip(mine["cookies"], theirs["cookies"], strict=True):
                if not value:  # a deleted cookie
                    assert not other
                    continue
                expected = dict(make_session())
                for reader in (ours, flasks):
                    serializer = reader.get_signing_serializer(app)
                    assert serializer.loads(value) == serializer.loads(other) == expected


def test_open_session_agrees_with_flask():
    """With no cookie at all, with another cookie, with a good and a bad session cookie, and
    with no secret key: the session Flask's interface opens, of the same class and state."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "a key for this test"
    ours, flasks = PortalSessionInterface(), SecureCookieSessionInterface()
    good = flasks.get_signing_serializer(app).dumps({"csrf_token": RAW})
    for headers in ({}, {"Cookie": "other=1"}, {"Cookie": f"session={good}"},
                    {"Cookie": "session=forged.value.sig"}):
        with app.test_request_context(headers=headers) as context:
            mine, theirs = (i.open_session(app, context.request) for i in (ours, flasks))
            assert type(mine) is type(theirs) and dict(mine) == dict(theirs), headers
            assert (mine.modified, mine.accessed, mine.new) == (
                theirs.modified, theirs.accessed, theirs.new)
    app.config["SECRET_KEY"] = None
    with app.test_request_context() as context:
        assert ours.open_session(app, context.request) is None
        assert flasks.open_session(app, context.request) is None


def test_session_json_is_flasks_text():
    """The untagged shortcut writes exactly what Flask's tagged serializer writes, in and out
    of an app context, with the app's JSON settings; other values take Flask's path."""
    from datetime import UTC, datetime

    from flask.sessions import session_json_serializer

    ours = _SessionJSON()
    values = [{"csrf_token": RAW}, {"b": 1, "a": "é ☃ \u2028", "c": None, "d": True},
              {" t": "looks like a tag"}, {" t": "tag key", "other": 1}, {},
              {"n": 1.5}, {"when": datetime(2026, 11, 23, tzinfo=UTC)}, {"list": [1, (2, 3)]},
              {"bytes": b"\x00"}, {1: "not a str key"}]
    app = Flask(__name__)
    for ensure_ascii, sort_keys in [(True, True), (False, False)]:
        app.json.ensure_ascii, app.json.sort_keys = ensure_ascii, sort_keys
        with app.app_context():
            for value in values:
                assert ours.dumps(value) == session_json_serializer.dumps(value), value
    for value in values:  # outside an app context
        assert ours.dumps(value) == session_json_serializer.dumps(value), value
    assert ours.loads(ours.dumps(values[1])) == values[1]


def test_the_serializer_reads_and_is_read_by_itsdangerous_own():
    stock = URLSafeTimedSerializer("k", salt="s")
    ours = _PortalSerializer("k", salt="s")
    samples = [RAW, {"csrf_token": RAW}, {"a": "a" * 50},  # short, compressible: not compressed
               {"csrf_token": RAW, "note": "repeat " * 40}]  # long: compressed as the stock's
    for sample in samples:
        mine = ours.dumps(sample)
        assert stock.loads(mine) == ours.loads(stock.dumps(sample)) == sample
    assert not ours.dumps({"a": "a" * 50}).startswith(".")
    assert stock.dumps({"a": "a" * 50}).startswith(".")
    assert ours.dumps(samples[3]).startswith(".")
    # One signer per salt, made once; a token made for one salt is refused under another.
    assert ours.make_signer() is ours.make_signer("s")
    assert ours.make_signer("other") is not ours.make_signer()
    with pytest.raises(BadSignature):
        ours.loads(_PortalSerializer("k", salt="other").dumps(RAW))
    with pytest.raises(BadSignature):
        ours.loads(_PortalSerializer("another key", salt="s").dumps(RAW))


def _outcome(call):
    try:
        return ("value", call())
    except Exception as exc:  # the kind and message of any failure, to compare both ways'
        return (type(exc).__name__, str(exc))


def test_the_serializer_makes_what_itsdangerous_makes(monkeypatch):
    """``dumps`` joins payload, timestamp and signature itself: byte for byte the stock
    serializer's output at the same second, for every payload zlib does not shorten, with
    one key or with fallback keys, with the session's digest or the default one."""
    monkeypatch.setattr(time, "time", lambda: 1_795_000_000.7)
    hashes = {"default": {}, "sha1 itself": {"digest_method": hashlib.sha1}}
    for keys in ("k", ["old key", "current key"]):
        for kwargs in hashes.values():
            stock = URLSafeTimedSerializer(keys, salt="s", signer_kwargs=kwargs)
            ours = _PortalSerializer(keys, salt="s", signer_kwargs=kwargs)
            for sample in (TOKEN, {"csrf_token": TOKEN}, {"é": "☃"}, [1, None, True], ""):
                assert ours.dumps(sample) == stock.dumps(sample), (keys, kwargs, sample)
                assert ours.dumps(sample, salt="other") == stock.dumps(sample, salt="other")
    # A signer of another kind (here: another separator) is used the stock way.
    stock = URLSafeTimedSerializer("k", salt="s", signer_kwargs={"sep": "~"})
    ours = _PortalSerializer("k", salt="s", signer_kwargs={"sep": "~"})
    assert not ours.make_signer().plain_hmac
    assert ours.dumps(TOKEN) == stock.dumps(TOKEN) and "~" in ours.dumps(TOKEN)


def test_the_serializer_reads_as_itsdangerous_reads(monkeypatch):
    """``loads`` takes its short way only for a good signature by the current key within its
    age; every other value gets exactly the stock serializer's answer or error."""
    now = 1_795_000_000
    monkeypatch.setattr(time, "time", lambda: now + 0.5)
    current = URLSafeTimedSerializer(["old", "new"], salt="s")
    old = URLSafeTimedSerializer("old", salt="s")
    good = current.dumps({"csrf_token": TOKEN})
    value, stamp_and_sig = good.split(".", 1)
    stamp, signature = stamp_and_sig.split(".")

    def signed_at(seconds: int) -> str:
        monkeypatch.setattr(time, "time", lambda: seconds + 0.5)
        try:
            return current.dumps({"csrf_token": TOKEN})
        finally:
            monkeypatch.setattr(time, "time", lambda: now + 0.5)

    def resign(text: str) -> str:  # a correct signature over any text, by the current key
        signer = current.make_signer()
        return text + "." + signer.get_signature(text).decode()

    cases = {
        "good": (good, {}),
        "good, within max_age": (good, {"max_age": 10}),
        "good, with its timestamp": (good, {"return_timestamp": True}),
        "by a fallback key": (old.dumps({"csrf_token": TOKEN}), {}),
        "by an unknown key": (URLSafeTimedSerializer("other", salt="s").dumps(TOKEN), {}),
        "under another salt": (current.dumps(TOKEN, salt="t"), {}),
        "signature changed": (f"{value}.{stamp}.{signature[:-2]}AA", {}),
        "payload changed": (f"e{value[1:]}.{stamp}.{signature}", {}),
        "signature padded": (good + "=", {}),
        "no separator": ("nothing-to-split", {}),
        "one separator": (f"{value}.{signature}", {}),
        "expired": (signed_at(now - 100), {"max_age": 10}),
        "from the future": (signed_at(now + 100), {"max_age": 10}),
        "from the future, no max_age": (signed_at(now + 100), {}),
        "timestamp not base64": (resign(f"{value}.!!!!"), {}),
        "timestamp too long": (resign(f"{value}.AAAAAAAAAAAAAAAA"), {}),
        "timestamp past year 9999": (resign(f"{value}.AQAAAAAAAAA"), {}),
        "payload not JSON": (resign("bm90IGpzb24.aIZkgA"), {}),
        "compressed payload": (current.dumps({"note": "repeat " * 40}), {}),
        "bytes": (good.encode(), {}),
    }
    ours = _PortalSerializer(["old", "new"], salt="s")
    for name, (token, kwargs) in cases.items():
        mine = _outcome(lambda token=token, kwargs=kwargs: ours.loads(token, **kwargs))
        theirs = _outcome(lambda token=token, kwargs=kwargs: current.loads(token, **kwargs))
        assert mine == theirs, name
    # The good ones were read the short way: without the signer's own unsign.
    def refuse(*args, **kwargs):
        raise AssertionError("the stock way was taken")

    monkeypatch.setattr(ours.make_signer(), "unsign", refuse)
    assert ours.loads(good) == ours.loads(good, max_age=10) == {"csrf_token": TOKEN}


def test_the_cookie_header_is_werkzeugs():
    """The session cookie's header, put together from parts kept per configuration, is what
    werkzeug's ``dump_cookie`` writes; a value werkzeug would quote, or a header over the
    size limit, is left to werkzeug (which warns about the size)."""
    from werkzeug.http import dump_cookie

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "a key for this test"
    interface = PortalSessionInterface()
    value = interface.get_signing_serializer(app).dumps({"csrf_token": RAW})

    def cookie(value: str) -> str | None:
        return interface._cookie(app, interface.get_cookie_name(app),
                                 interface._cookie_options(app), value)

    for config in CONFIGS:
        app.config.update(config)
        expected = dump_cookie(
            interface.get_cookie_name(app), value, domain=interface.get_cookie_domain(app),
            path=interface.get_cookie_path(app), secure=interface.get_cookie_secure(app),
            httponly=interface.get_cookie_httponly(app),
            samesite=interface.get_cookie_samesite(app),
            partitioned=interface.get_cookie_partitioned(app))
        assert cookie(value) == expected
    assert cookie('needs "quotes"') is None
    assert cookie("a b") is None
    app.config["MAX_COOKIE_SIZE"] = 40
    assert cookie(value) is None
    response = app.response_class("page")
    with app.test_request_context(), pytest.warns(UserWarning, match="too large"):
        interface.save_session(app, _session({"csrf_token": RAW}, modified=True), response)
    assert response.headers["Set-Cookie"].startswith("session=")


def test_csrf_tokens_are_flask_wtfs(app):
    """The CSRF serializer makes tokens Flask-WTF's own serializer reads, and reads theirs."""
    secret = app.secret_key
    stock = URLSafeTimedSerializer(secret, salt="wtf-csrf-token")
    ours = csrf_serializer(secret)
    assert stock.loads(ours.dumps(RAW)) == ours.loads(stock.dumps(RAW)) == RAW


# ---------------------------------------------------------------- ensure_sync


def test_ensure_sync_remembers_a_bounded_number_of_functions():
    app = PortalFlask(__name__)

    def view():
        return "ok"

    assert app.ensure_sync(view) is view
    assert view in app._sync
    for _ in range(app.MAX_SYNC + 50):
        app.ensure_sync(lambda: None)  # a function made per call, like after_this_request's
    assert len(app._sync) == app.MAX_SYNC

    class Unhashable:
        __hash__ = None

        def __call__(self):
            return "called"

    unhashable = Unhashable()
    assert app.ensure_sync(unhashable) is unhashable

    async def coroutine():
        return "async"

    # Without asgiref (Flask's "async" extra) Flask refuses coroutine functions; so do we.
    with pytest.raises(RuntimeError, match="async"):
        app.ensure_sync(coroutine)
    with pytest.raises(RuntimeError, match="async"):  # the refusal is not remembered as a pass
        app.ensure_sync(coroutine)


def test_hooks_and_views_are_remembered_after_a_request(client, app):
    client.get("/demo/en/report")
    assert app.view_functions["reporting.report"] in app._sync
    assert all(hook in app._sync for hook in app.after_request_funcs[None])


# ---------------------------------------------------------------- the access line


@pytest.mark.parametrize("route,status,ms", [
    ("/<portal>/<lang>/report", 200, 0.3),
    ("/<portal>/<lang>/ŝtatus", 404, 12.0),  # not ASCII: written as is, as JsonFormatter does
    ('/odd"route\\with\tescapes', 500, 1234.5),
    ("-", 405, 0.0),
])
def test_access_line_is_what_the_formatter_writes(monkeypatch, route, status, ms):
    """Written straight to stderr, the line is byte for byte JsonFormatter's for the same
    record, the second time too (from the encoded part kept per route)."""
    logger, portal = logging.getLogger("portal.access"), logging.getLogger("portal")
    configure_logging(Flask(__name__))
    # pytest adds its capturing handlers to loggers that do not propagate: without them, the
    # setup is the default one, in which the line is written directly.
    monkeypatch.setattr(portal, "handlers",
                        [h for h in portal.handlers if getattr(h, "portal_json", False)])
    now = 1_795_000_000.123456
    monkeypatch.setattr(time, "time", lambda: now)
    access = _AccessLog()
    assert not logger.handlers and access._direct() is portal.handlers[0]
    for _ in range(2):
        stream = io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        access.write("GET", route, status, ms)
        record = logger.makeRecord(logger.name, logging.INFO, "", 0, "request", (), None,
                                   extra={"fields": {"method": "GET", "route": route,
                                                     "status": status, "ms": ms}})
        record.created = now
        assert stream.getvalue() == JsonFormatter().format(record) + "\n"
        assert json.loads(stream.getvalue())["route"] == route


# ---------------------------------------------------------------- security headers


def _start(app, environ=None) -> list[tuple[str, str]]:
    seen = []

    def start_response(status, headers, exc_info=None):
        seen.extend(headers)

    b"".join(app(environ or {}, start_response))
    return seen


def test_security_headers_are_added_once_and_never_over_a_responses_own():
    def plain(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def framed(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html"),
                                  ("x-frame-options", "SAMEORIGIN")])
        return [b"ok"]

    headers = _start(SecurityHeaders(plain))
    assert headers == [("Content-Type", "text/plain"), *STATIC_HEADERS]
    headers = _start(SecurityHeaders(framed))
    names = [name.lower() for name, _ in headers]
    assert names.count("x-frame-options") == 1 and ("x-frame-options", "SAMEORIGIN") in headers
    assert len(headers) == 2 + len(STATIC_HEADERS) - 1
    # A server that changes the list it is given changes no later response's headers.
    middleware = SecurityHeaders(plain)

    def meddling(status, headers, exc_info=None):
        headers.append(("X-Server", "meddles"))

    b"".join(middleware({}, meddling))
    assert _start(middleware) == [("Content-Type", "text/plain"), *STATIC_HEADERS]


def test_every_security_header_appears_once_on_a_page(client):
    response = client.get("/demo/en/report")
    for name, value in STATIC_HEADERS:
        assert response.headers.getlist(name) == [value]
    assert len(response.headers.getlist("Content-Security-Policy")) == 1
    assert response.headers.getlist("Vary") == ["Cookie"]
    assert response.headers["Cache-Control"] == "no-store"
