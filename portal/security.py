"""Security headers, CSRF, request size limits and salted, short-lived rate-limit keys."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request, session
from flask_limiter import Limiter
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect, _FlaskFormCSRF
from itsdangerous import BadData, SignatureExpired
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms.validators import ValidationError

from portal.i18n import wtforms_translations
from portal.keys import derive_key
from portal.settings import Settings
from portal.signing import PortalSessionInterface, csrf_serializer

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


def csrf_token() -> str:
    """This request's CSRF token: Flask-WTF's ``generate_csrf()`` (the same raw token in the
    session, the same signed token cached on ``g`` and checked by ``check_csrf``)."""
    app = current_app._get_current_object()
    field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    state = vars(g._get_current_object())
    if field not in state:
        secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
        data = session._get_current_object()
        raw = data.get(field)
        if not isinstance(raw, str):
            raw = data[field] = secrets.token_hex(20)  # 160 random bits, as Flask-WTF's
        state[field] = csrf_serializer(secret).dumps(raw)
    return state[field]


def check_csrf(data: str | None, secret: str | bytes, time_limit: int | None,
               field: str) -> None:
    """Flask-WTF's ``validate_csrf()``, step for step and with its messages (a
    ``wtforms.ValidationError``), on the serializer kept by ``csrf_serializer``."""
    if not data:
        raise ValidationError("The CSRF token is missing.")
    if field not in session:
        raise ValidationError("The CSRF session token is missing.")
    try:
        token = csrf_serializer(secret).loads(data, max_age=time_limit)
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
        # A token lasts as long as a staff session can (it is also bound to the session,
        # which sign-in and sign-out replace); a citizen's older one re-shows the form.
        WTF_CSRF_TIME_LIMIT=settings.staff_session_hours * 3600,
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
