"""Country portals: load + validate ``themes/``, resolve host or path, per-request portal."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from flask import Flask, abort, g, redirect, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import refresh as refresh_locale
from jinja2 import ChoiceLoader, FileSystemBytecodeCache, FileSystemLoader, PrefixLoader
from werkzeug.security import safe_join

from portal.settings import Settings
from portal.tenancy.themes import DEFAULT_THEME, Portal, draft_warnings, load_portals

log = logging.getLogger(__name__)

STATIC_PREFIX = "/_static"
# Paths served the same on every host (besides those under /_).
SHARED_PATHS = frozenset({"/healthz", "/healthz/details", "/readyz", "/metrics"})
# What a request leaves on ``g`` that the next one in the same app context must not see.
_PER_REQUEST = frozenset({"portal", "lang", "csp_extra", "user", "welfare_message", "csrf_token"})
DEFAULT_COLORS = {"brand": "#1d4e89", "brand_text": "#ffffff", "accent": "#1d4e89"}


class HostRouting:
    """WSGI middleware: on a portal's own host name, ``/en/report`` means ``/<slug>/en/report``.

    Paths already carrying the slug, and the shared paths (``/_static``, ``/healthz``), pass
    unchanged, so links built with ``url_for`` work on the portal's host and on the shared one.
    """

    def __init__(self, app, hosts: dict[str, str]):
        self.app = app
        self.hosts = hosts

    def __call__(self, environ, start_response):
        host = (environ.get("HTTP_HOST") or "").split(":")[0].lower().rstrip(".")
        slug = self.hosts.get(host)
        if slug:
            path = environ.get("PATH_INFO") or "/"
            shared = path.startswith("/_") or path in SHARED_PATHS
            if not shared and path != f"/{slug}" and not path.startswith(f"/{slug}/"):
                environ["PATH_INFO"] = f"/{slug}" + (path if path != "/" else "/")
        return self.app(environ, start_response)


class Tenancy:
    """The loaded portals and the lookups the rest of the app needs."""

    def __init__(self, settings: Settings):
        self.themes_path = settings.themes_path
        self.portals: dict[str, Portal] = load_portals(
            settings.themes_path, settings.translations_path
        )
        for warning in draft_warnings(self.portals, settings.translations_path):
            log.warning(warning)
        self.hosts = {host: p.slug for p in self.portals.values() for host in p.hosts}
        self.overrides: set[str] = set()
        for portal in self.portals.values():
            if portal.templates_path.is_dir():
                for template in portal.templates_path.rglob("*.html"):
                    name = template.relative_to(portal.templates_path).as_posix()
                    self.overrides.add(f"{portal.slug}/{name}")
        self._css_cache: dict[str, tuple[bytes, str]] = {}

    def template_for(self, name: str, portal: Portal | None) -> str:
        if portal is not None and f"{portal.slug}/{name}" in self.overrides:
            return f"{portal.slug}/{name}"
        return f"{DEFAULT_THEME}/{name}"

    def loader(self) -> PrefixLoader:
        mapping = {DEFAULT_THEME: FileSystemLoader(self.themes_path / DEFAULT_THEME / "templates")}
        for portal in self.portals.values():
            mapping[portal.slug] = FileSystemLoader(portal.templates_path)
        return PrefixLoader(mapping)

    def stylesheet(self, portal: Portal | None) -> tuple[bytes, str]:
        """The default stylesheet with the portal's colours; cached with its ETag."""
        slug = portal.slug if portal else DEFAULT_THEME
        if slug not in self._css_cache:
            base = (self.themes_path / DEFAULT_THEME / "static" / "portal.css").read_bytes()
            own = portal.path / "static" / "portal.css" if portal else None
            colors = portal.colors if portal else DEFAULT_COLORS
            variables = (
                f":root{{--brand:{colors['brand']};--brand-text:{colors['brand_text']};"
                f"--accent:{colors['accent']}}}\n"
            ).encode()
            body = variables + base + (own.read_bytes() if own and own.is_file() else b"")
            self._css_cache[slug] = (body, hashlib.sha256(body).hexdigest()[:20])
        return self._css_cache[slug]


def current_portal() -> Portal | None:
    return g.get("portal")


def configure_tenancy(app: Flask, settings: Settings) -> None:
    tenancy = Tenancy(settings)
    app.extensions["portal.tenancy"] = tenancy
    app.jinja_env.add_extension("jinja2.ext.do")
    app.jinja_loader = ChoiceLoader(
        [tenancy.loader(), FileSystemLoader(Path(app.root_path) / "templates")]
    )
    # Compiled templates are kept in the instance folder (keyed by each source's checksum), so
    # the compilation below costs each gunicorn worker milliseconds, not a tenth of a second.
    bytecode = settings.instance_path / "jinja-bytecode"
    bytecode.mkdir(parents=True, exist_ok=True)
    app.jinja_env.bytecode_cache = FileSystemBytecodeCache(str(bytecode))
    app.wsgi_app = HostRouting(app.wsgi_app, tenancy.hosts)  # type: ignore[method-assign]
    # Compile every template now, so a broken override stops start-up instead of a request.
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)

    @app.url_value_preprocessor
    def forget_previous_request(endpoint: str | None, values: dict | None) -> None:
        """Start every request without a portal: an app context (and so ``g``) can outlive a
        request when one was already active, as in tests and CLI commands."""
        state = vars(g._get_current_object())
        # A fresh app context, as every request has in production, holds none of them.
        if not state.keys().isdisjoint(_PER_REQUEST | {"_flask_babel"}):
            for key in _PER_REQUEST:
                state.pop(key, None)
            refresh_locale()

    @app.context_processor
    def theme_helpers() -> dict[str, object]:
        return {"theme_template": lambda name: tenancy.template_for(name, current_portal())}

    @app.get("/<portal_slug>/")
    def portal_root(portal_slug: str) -> ResponseReturnValue:
        portal = tenancy.portals.get(portal_slug)
        if portal is None:
            abort(404)
        lang = request.accept_languages.best_match(portal.languages) or portal.default_language
        response = redirect(url_for("reporting.landing", portal=portal.slug, lang=lang))
        response.headers["Vary"] = "Accept-Language"
        return response

    @app.get(f"{STATIC_PREFIX}/<portal_slug>/<path:filename>")
    def theme_static(portal_slug: str, filename: str) -> ResponseReturnValue:
        portal = tenancy.portals.get(portal_slug)
        if portal is None and portal_slug != DEFAULT_THEME:
            abort(404)
        if filename == "portal.css":
            body, etag = tenancy.stylesheet(portal)
            response = app.response_class(body, mimetype="text/css")
            response.set_etag(etag)
            response.cache_control.public = True
            response.cache_control.max_age = 86400
            return response.make_conditional(request)
        if portal is not None and filename == portal.logo:
            target = portal.path / portal.logo
        else:
            folders = [portal.path / "static"] if portal else []
            folders.append(tenancy.themes_path / DEFAULT_THEME / "static")
            candidates = [safe_join(str(folder), filename) for folder in folders]
            try:
                target = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
            except OSError:  # a name longer than the file system takes: no such file
                target = None
        if target is None or not target.is_file():
            abort(404)
        return send_file(target, max_age=86400, conditional=True, etag=True)
