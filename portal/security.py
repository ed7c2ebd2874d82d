"""Security headers, CSRF, request size limits and salted, short-lived rate-limit keys."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request, session
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_limiter import Limiter
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect, _FlaskFormCSRF
from itsdangerous import BadData, SignatureExpired, Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, want_bytes
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms.validators import ValidationError

from portal.i18n import wtforms_translations
from portal.keys import derive_key
from portal.settings import Settings

csrf = CSRFProtect()


def _rate_key() -> str:
    """The client address, hashed with a key that changes every day, plus the portal.

    The limiter's store never sees an IP address, and yesterday's keys cannot be linked to
    today's. The address itself is never logged or stored anywhere else.
    """
    day = datetime.now(UTC).strftime("%Y-%m-%d").encode()
    salt = hmac.new(current_app.extensions["portal.ratelimit_secret"], day, hashlib.sha256)
    salt.update((request.remote_addr or "-").encode())
    portal = g.get("portal")
    return f"{portal.slug if portal else '-'}:{salt.hexdigest()[:32]}"


limiter = Limiter(key_func=_rate_key, default_limits=[], headers_enabled=False)


class _KeyCachingSigner(TimestampSigner):
    """itsdangerous' timestamp signer, deriving the signing key of each of its secrets once
    instead of on every signature made or checked (one HMAC each): the same keys, so the same
    signatures. ``_PortalSerializer`` keeps one signer per salt, so the keys are derived once
    per serializer."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        key = self._keys.get(secret)
        if key is None:
            key = self._keys[secret] = super().derive_key(secret)
        return key


# Payloads shorter than this are base64-encoded without first being offered to zlib.
_COMPRESS_FROM = 64


class _PortalSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer, for the session cookie and the CSRF token,
    without three costs it pays on every call:

    - the signer is made once per salt, not per call (a signer holds only its settings);
    - the signer derives its signing key once per secret (``_KeyCachingSigner``);
    - a payload under ``_COMPRESS_FROM`` bytes is not offered to zlib, which needs a quarter
      of a megabyte of working memory per call to save a few bytes at most.

    Only the last changes what is made, and only the form: the stock serializer reads these
    tokens and cookies, and this one reads the stock ones (tested)."""

    default_signer = _KeyCachingSigner

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._signers: dict[bytes, Signer] = {}

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        salt = want_bytes(self.salt if salt is None else salt)
        signer = self._signers.get(salt)
        if signer is None:
            signer = self._signers[salt] = super().make_signer(salt)
        return signer

    def dump_payload(self, obj: object) -> bytes:
        payload = want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs))
        if len(payload) < _COMPRESS_FROM:
            return base64_encode(payload)
        return super().dump_payload(obj)


_PLAIN = frozenset({str, int, bool, type(None)})


@functools.lru_cache(maxsize=4)
def _json_encoder(sort_keys: bool, ensure_ascii: bool) -> json.JSONEncoder:
    return json.JSONEncoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii,
                            separators=(",", ":"))


class _SessionJSON(TaggedJSONSerializer):
    """Flask's tagged JSON for session cookies. A session of strings, numbers, booleans and
    None, the usual kind, needs no tags: it is encoded by one JSON encoder kept per setting
    of the app's JSON provider, into the very text Flask's path (tagging every value, then
    ``flask.json.dumps`` through the provider, which builds a new encoder per call) gives.
    Anything else, or an app with a JSON provider of its own, takes Flask's path (tested)."""

    __slots__ = ()

    def dumps(self, value: object) -> str:
        if (type(value) is dict and current_app
                and type(provider := current_app.json) is DefaultJSONProvider
                and all(type(k) is str and type(v) in _PLAIN for k, v in value.items())
                and not (len(value) == 1 and next(iter(value)) in self.tags)):
            return _json_encoder(provider.sort_keys, provider.ensure_ascii).encode(value)
        return super().dumps(value)


class PortalSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, only cheaper to make: the signing serializer
    (``_PortalSerializer``) is built once per set of keys instead of twice per request
    (building one serializes a probe value), and HMAC-SHA1 is given as ``hashlib.sha1``
    itself, which the ``hmac`` module computes in OpenSSL, rather than as Flask's Python
    wrapper around it, which makes ``hmac`` fall back to its pure-Python construction."""

    digest_method = staticmethod(hashlib.sha1)
    serializer = _SessionJSON()

    def __init__(self) -> None:
        self._serializers: dict[tuple, _PortalSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        # As Flask's: the fallback keys first, the current key last.
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = _PortalSerializer(
                list(keys), salt=self.salt, serializer=self.serializer,
                signer_kwargs={"key_derivation": self.key_derivation,
                               "digest_method": self.digest_method})
            if len(self._serializers) > 8:  # keys changed at run time (tests): forget old ones
                self._serializers.clear()
            self._serializers[keys] = serializer
        return serializer

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Flask's, with the cookie's ``Vary`` header written once instead of being parsed and
        rewritten twice. A session that is empty or permanent, or that is not to be written,
        takes Flask's own path; a test compares the two on every kind of session."""
        if not session or session.permanent or not self.should_set_cookie(app, session):
            super().save_session(app, session, response)
            return
        response.set_cookie(
            self.get_cookie_name(app), self.get_signing_serializer(app).dumps(dict(session)),
            httponly=self.get_cookie_httponly(app), domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app), secure=self.get_cookie_secure(app),
            partitioned=self.get_cookie_partitioned(app),
            samesite=self.get_cookie_samesite(app))
        vary = response.headers.get("Vary")
        if not vary:
            response.headers["Vary"] = "Cookie"
        elif "cookie" not in (value.strip().lower() for value in vary.split(",")):
            response.vary.add("Cookie")


@functools.lru_cache(maxsize=8)
def _csrf_serializer(secret: str | bytes) -> URLSafeTimedSerializer:
    """Flask-WTF's token serializer for ``secret``, built once instead of on every call, with
    HMAC-SHA1 computed in OpenSSL (see PortalSessionInterface): ``_PortalSerializer``."""
    return _PortalSerializer(secret, salt="wtf-csrf-token",
                             signer_kwargs={"digest_method": hashlib.sha1})


def csrf_token() -> str:
    """This request's CSRF token: Flask-WTF's ``generate_csrf()`` (the same raw token in the
    session, the same signed token cached on ``g`` and checked by ``check_csrf``)."""
    secret = current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    state = vars(g._get_current_object())
    if field not in state:
        if not isinstance(session.get(field), str):
            session[field] = secrets.token_hex(20)  # 160 random bits, as Flask-WTF's
        state[field] = _csrf_serializer(secret).dumps(session[field])
    return state[field]


def check_csrf(data: str | None, secret: str | bytes, time_limit: int | None,
               field: str) -> None:
    """Flask-WTF's ``validate_csrf()``, step for step and with its messages (a
    ``wtforms.ValidationError``), on the serializer kept by ``_csrf_serializer``."""
    if not data:
        raise ValidationError("The CSRF token is missing.")
    if field not in session:
        raise ValidationError("The CSRF session token is missing.")
    try:
        token = _csrf_serializer(secret).loads(data, max_age=time_limit)
    except SignatureExpired as exc:
        raise ValidationError("The CSRF token has expired.") from exc
    except BadData as exc:
        raise ValidationError("The CSRF token is invalid.") from exc
    if not hmac.compare_digest(session[field], token):
        raise ValidationError("The CSRF tokens do not match.")


class PortalCSRF(_FlaskFormCSRF):
    """Flask-WTF's CSRF for forms, the token checked by ``check_csrf``."""

    def validate_csrf_token(self, form, field) -> None:
        if g.get("csrf_valid", False):  # already checked by CSRFProtect
            return
        try:
            check_csrf(field.data, self.meta.csrf_secret, self.meta.csrf_time_limit,
                       self.meta.csrf_field_name)
        except ValidationError as exc:
            logging.getLogger("flask_wtf.csrf").info(exc.args[0])
            raise


class PortalForm(FlaskForm):
    """Every form of the app: Flask-WTF's, with WTForms' own messages from a per-process cache
    (``portal.i18n.wtforms_translations``) and the CSRF token checked by ``check_csrf``."""

    class Meta:
        csrf_class = PortalCSRF

        def get_translations(self, form):
            return wtforms_translations


# The security headers that are the same on every response.
STATIC_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


class SecurityHeaders:
    """WSGI middleware: every response starts with ``STATIC_HEADERS`` added, except any the
    response already sets itself. The Content-Security-Policy, which depends on the page, and
    ``Cache-Control: no-store`` on HTML are set by an ``after_request`` hook. (Appending the
    six to the header list as the response starts costs less than setting them one by one
    on each response object, where werkzeug's ``Headers`` checks and de-duplicates each.)"""

    def __init__(self, app, headers: tuple[tuple[str, str], ...] = STATIC_HEADERS) -> None:
        self.app = app
        self.headers = list(headers)
        self.names = frozenset(name.lower() for name, _ in headers)

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers} & self.names
            added = [h for h in self.headers if h[0].lower() not in present] if present \
                else self.headers
            return start_response(status, headers + added, exc_info)

        return self.app(environ, start)


@functools.lru_cache(maxsize=64)
def _policy(extra: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    return content_security_policy(dict(extra))


def content_security_policy(extra: dict[str, tuple[str, ...]] | None = None) -> str:
    directives: dict[str, list[str]] = {
        "default-src": ["'none'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "script-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    }
    for name, sources in (extra or {}).items():
        directives.setdefault(name, []).extend(sources)
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def configure_security(app: Flask, settings: Settings) -> None:
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
        MAX_FORM_PARTS=64,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_NAME="portal_session",
        # Each form checks its own token so that a stale token re-shows the form with the
        # person's input kept and a localized message, instead of a bare 400.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=True,
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_STRATEGY="moving-window",
    )
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops,
            x_host=settings.proxy_hops,
        )
    app.extensions["portal.ratelimit_secret"] = derive_key(settings.secret_key, "ratelimit")
    csrf.init_app(app)
    limiter.init_app(app)

    app.session_interface = PortalSessionInterface()

    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def security_headers(response: Response) -> Response:
        extra = g.get("csp_extra") or {}
        response.headers["Content-Security-Policy"] = _policy(
            tuple((name, tuple(sources)) for name, sources in extra.items()))
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response
