"""Security headers, CSRF, request size limits and salted, short-lived rate-limit keys."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.keys import derive_key
from portal.settings import Settings

csrf = CSRFProtect()


def _rate_key() -> str:
    """The client address, hashed with a key that changes every day, plus the portal.

    The limiter's store never sees an IP address, and yesterday's keys cannot be linked to
    today's. The address itself is never logged or stored anywhere else.
    """
    from flask import current_app

    day = datetime.now(UTC).strftime("%Y-%m-%d").encode()
    salt = hmac.new(current_app.extensions["portal.ratelimit_secret"], day, hashlib.sha256)
    salt.update((request.remote_addr or "-").encode())
    portal = g.get("portal")
    return f"{portal.slug if portal else '-'}:{salt.hexdigest()[:32]}"


limiter = Limiter(key_func=_rate_key, default_limits=[], headers_enabled=False)


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

    @app.after_request
    def security_headers(response: Response) -> Response:
        extra = g.get("csp_extra")
        response.headers["Content-Security-Policy"] = content_security_policy(extra)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = (
            "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        )
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response
