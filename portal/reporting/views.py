"""The public pages of a portal: ``/<portal>/<lang>/...``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from flask import Blueprint, abort, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import ServiceUnavailable

from portal.db import db
from portal.observability import REPORTS
from portal.reporting.forms import ReportForm, StatusForm
from portal.reporting.receipts import clean, group
from portal.reporting.services import NewReport, accept_report, lookup_status
from portal.security import csrf_token, limiter

bp = Blueprint("reporting", __name__, url_prefix="/<portal>/<lang>")
log = logging.getLogger(__name__)


def _state() -> dict:
    return current_app.extensions["portal.reporting"]


@bp.url_value_preprocessor
def pick_portal(endpoint: str | None, values: dict | None) -> None:
    values = values or {}
    tenancy = current_app.extensions["portal.tenancy"]
    portal = tenancy.portals.get(values.pop("portal", None))
    lang = values.pop("lang", None)
    if portal is None:
        abort(404)
    g.portal = portal
    if lang not in portal.languages:
        g.lang = portal.default_language
        abort(404)
    g.lang = lang


@bp.url_defaults
def add_portal(endpoint: str, values: dict) -> None:
    if "portal" in g and "portal" not in values:
        values["portal"] = g.portal.slug
    if "lang" in g and "lang" not in values:
        values["lang"] = g.lang


def _captcha():
    state = _state()
    kind = g.portal.captcha if g.portal.captcha != "inherit" else state["default_captcha"]
    captcha = state["captchas"].get(kind, state["captchas"]["none"])
    g.csp_extra = captcha.csp
    return captcha


def page(name: str, **context) -> str:
    tenancy = current_app.extensions["portal.tenancy"]
    return render_template(tenancy.template_for(name, g.portal), **context)


def kept_page(name: str, variant: tuple, values: Mapping[str, str],
              build: Callable[[Mapping[str, str]], str]) -> str:
    """The page rendered once per process for this portal, language and variant, with this
    request's ``values`` put in (see :mod:`portal.reporting.pages`)."""
    template = current_app.extensions["portal.tenancy"].template_for(name, g.portal)
    key = (template, g.portal.slug, g.lang, request.script_root, request.endpoint, *variant)
    return _state()["pages"].render(key, build, values)


@bp.get("/")
def landing() -> ResponseReturnValue:
    return kept_page("landing.html", (), {}, lambda values: page("landing.html"))


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    return kept_page("privacy.html", (), {}, lambda values: page("privacy.html"))


def _report_form_page(captcha) -> str:
    """The empty report form: its CSRF token and any ALTCHA challenge are this request's."""
    widget = captcha.widget()
    values = {"csrf_token": csrf_token()}
    if widget.challenge:
        values["challenge"] = widget.challenge

    def build(values: Mapping[str, str]) -> str:
        form = ReportForm()
        form.csrf_token.current_token = values["csrf_token"]
        shown = replace(widget, challenge=values["challenge"]) if widget.challenge else widget
        return page("report.html", form=form, widget=shown, captcha_error=None)

    return kept_page("report.html", (widget.kind, widget.sitekey), values, build)


def _receipt_page(receipt: str, urgent: bool, count: int) -> str:
    def build(values: Mapping[str, str]) -> str:
        return page("receipt.html", receipt=values["receipt"], urgent=urgent, count=count)

    return kept_page("receipt.html", (urgent, count), {"receipt": group(receipt)}, build)


def _report_limit() -> str:
    return current_app.extensions["portal.settings"].ratelimit_report


def _status_limit() -> str:
    return current_app.extensions["portal.settings"].ratelimit_status


# The form and its submission are separate views of one URL, so that only the submission goes
# through the rate limiter's decorator (``url_for("reporting.report")`` is that URL).
@bp.get("/report")
def report() -> ResponseReturnValue:
    return _report_form_page(_captcha())


@bp.post("/report")
@limiter.limit(_report_limit)
def report_submit() -> ResponseReturnValue:
    captcha = _captcha()
    form = ReportForm()
    valid = form.validate()
    if form.csrf_token.errors:
        form.csrf_token.errors = [
            _("Your session has expired. Please check your report and send it again.")
        ]
    captcha_ok = captcha.verify(request.form)
    if valid and captcha_ok:
        receipt = accept_report(
            NewReport(
                portal=g.portal.slug,
                lang=g.lang,
                urls=form.cleaned_urls,
                content_type=form.content_type.data,
                where_found=form.where_found.data,
                description=(form.description.data or "").strip(),
                urgent=bool(form.child_in_danger.data),
                contact_email=form.contact_email.data or "",
            ),
            _state()["sealing_key"],
            _state()["receipt_key"],
        )
        REPORTS.labels(g.portal.slug).inc()
        return _receipt_page(receipt, bool(form.child_in_danger.data), len(form.cleaned_urls))
    captcha_error = (
        None if captcha_ok else _("The anti-abuse check did not succeed. Please try again.")
    )
    return page("report.html", form=form, widget=captcha.widget(),
                captcha_error=captcha_error), 400


def _status_form_page() -> str:
    """The empty status form: its CSRF token is this request's."""

    def build(values: Mapping[str, str]) -> str:
        form = StatusForm()
        form.csrf_token.current_token = values["csrf_token"]
        return page("status.html", form=form, result=None, looked_up=False)

    return kept_page("status.html", (), {"csrf_token": csrf_token()}, build)


@bp.get("/status")
def status() -> ResponseReturnValue:
    return _status_form_page()


@bp.post("/status")
@limiter.limit(_status_limit)
def status_submit() -> ResponseReturnValue:
    form = StatusForm()
    if not form.validate():
        if form.csrf_token.errors:
            form.csrf_token.errors = [_("Your session has expired. Please try again.")]
        return page("status.html", form=form, result=None, looked_up=False), 400
    # The same work for a right and a wrong code: one keyed hash, one indexed read.
    result = lookup_status(clean(form.receipt.data), _state()["receipt_key"])
    db.session.rollback()
    return page("status.html", form=form, result=result, looked_up=True)


@bp.errorhandler(DBAPIError)
@bp.errorhandler(PoolTimeout)
def database_unavailable(error: Exception) -> ResponseReturnValue:
    """The database could not store or read what a page needs (unreachable, a full disk): a
    503, never a receipt. The report form comes back with everything typed still in it."""
    cause = getattr(error, "orig", None) or error
    # The kind only: a database error's message carries the statement's parameters.
    code = getattr(cause, "sqlite_errorname", None) or getattr(cause, "sqlstate", None)
    log.error("database unavailable for %s: %s%s", request.endpoint, type(cause).__name__,
              f" ({code})" if code else "")
    if request.endpoint == "reporting.report_submit":
        message = _("Your report could not be received just now and has not been stored. "
                    "Please try again in a few minutes.")
        return page("report.html", form=ReportForm(), widget=_captcha().widget(),
                    captcha_error=message), 503
    return current_app.handle_http_exception(ServiceUnavailable())
