"""Error pages: localized in the portal's language where the portal is known."""

from __future__ import annotations

from flask import Flask, current_app, g, render_template, request
from flask_babel import gettext as _
from flask_babel import refresh
from werkzeug.exceptions import HTTPException, SecurityError


def _portal_from_path(tenancy) -> None:
    """For a path no route matched, find the portal and language it was meant for."""
    parts = request.path.strip("/").split("/")
    portal = tenancy.portals.get(parts[0]) if parts else None
    if portal is not None:
        g.portal = portal
        if len(parts) > 1 and parts[1] in portal.languages:
            g.lang = parts[1]


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if isinstance(request.routing_exception, SecurityError):
            # A host this deployment does not serve: Flask made no URL adapter for it, so no
            # page with links can be built, whatever else is wrong with the request; a plain
            # 400 that repeats nothing it was sent.
            return current_app.response_class(
                _("The request could not be understood. Please go back and try again."), 400,
                mimetype="text/plain")
        tenancy = current_app.extensions["portal.tenancy"]
        if "portal" not in g:
            _portal_from_path(tenancy)
        if "lang" not in g:
            g.lang = g.portal.default_language if "portal" in g else "en"
        refresh()
        messages = {
            400: _("The request could not be understood. Please go back and try again."),
            403: _("You do not have access to this page."),
            404: _("We could not find this page."),
            405: _("This page cannot be used in this way."),
            413: _("What you sent is too large. Please shorten it and try again."),
            415: _("This page takes only what its own form sends. Please go back and use the "
                   "form."),
            429: _("Too many attempts in a short time. Please wait a few minutes and try again."),
            503: _("The service is not available right now. Please try again in a few minutes."),
        }
        message = messages.get(error.code or 500, _("Something went wrong. Please try again."))
        if request.path.startswith(("/staff/", "/sponsors/")):
            g.setdefault("user", None)
            return render_template("staff_error.html", code=error.code, message=message), error.code
        template = tenancy.template_for("error.html", g.get("portal"))
        return render_template(template, code=error.code, message=message), error.code
