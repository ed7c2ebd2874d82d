"""Error pages: localized in the portal's language where the portal is known."""

from __future__ import annotations

from flask import Flask, current_app, g, render_template
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        tenancy = current_app.extensions["portal.tenancy"]
        messages = {
            404: _("We could not find this page."),
            405: _("This page cannot be used in this way."),
            413: _("What you sent is too large. Please shorten it and try again."),
            429: _("Too many attempts in a short time. Please wait a few minutes and try again."),
        }
        message = messages.get(error.code or 500, _("Something went wrong. Please try again."))
        if "lang" not in g:
            g.lang = g.portal.default_language if "portal" in g else "en"
        template = tenancy.template_for("error.html", g.get("portal"))
        return render_template(template, code=error.code, message=message), error.code
