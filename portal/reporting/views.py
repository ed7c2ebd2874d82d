"""The public pages of a portal: ``/<portal>/<lang>/...``."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal.db import db
from portal.observability import REPORTS
from portal.reporting.forms import ReportForm, StatusForm
from portal.reporting.receipts import clean, group
from portal.reporting.services import NewReport, accept_report, lookup_status
from portal.security import limiter

bp = Blueprint("reporting", __name__, url_prefix="/<portal>/<lang>")


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


@bp.get("/")
def landing() -> ResponseReturnValue:
    return page("landing.html")


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    return page("privacy.html")


def _report_limit() -> str:
    return current_app.extensions["portal.settings"].ratelimit_report


def _status_limit() -> str:
    return current_app.extensions["portal.settings"].ratelimit_status


@bp.route("/report", methods=["GET", "POST"])
@limiter.limit(_report_limit, methods=["POST"])
def report() -> ResponseReturnValue:
    form = ReportForm()
    captcha = _captcha()
    if request.method == "POST":
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
            return page(
                "receipt.html", receipt=group(receipt), urgent=bool(form.child_in_danger.data),
                count=len(form.cleaned_urls),
            )
        status = 400
        captcha_error = (
            None if captcha_ok else _("The anti-abuse check did not succeed. Please try again.")
        )
        return page("report.html", form=form, widget=captcha.widget(),
                    captcha_error=captcha_error), status
    return page("report.html", form=form, widget=captcha.widget(), captcha_error=None)


@bp.route("/status", methods=["GET", "POST"])
@limiter.limit(_status_limit, methods=["POST"])
def status() -> ResponseReturnValue:
    form = StatusForm()
    if request.method == "POST":
        if not form.validate():
            if form.csrf_token.errors:
                form.csrf_token.errors = [_("Your session has expired. Please try again.")]
            return page("status.html", form=form, result=None, looked_up=False), 400
        # The same work for a right and a wrong code: one keyed hash, one indexed read.
        result = lookup_status(clean(form.receipt.data), _state()["receipt_key"])
        db.session.rollback()
        return page("status.html", form=form, result=result, looked_up=True)
    return page("status.html", form=form, result=None, looked_up=False)
