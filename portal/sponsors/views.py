"""The sponsors' side: progress reports for their own portals, as a page, a PDF and a CSV.
Aggregates only: no URL, no description, nothing about a reporter."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import format_date
from flask_babel import gettext as _

from portal.accounts import auth
from portal.assessment.audit import record
from portal.sponsors.figures import Figuring, PeriodPurged
from portal.sponsors.periods import PeriodError, parse_period
from portal.sponsors.render import page_context, render_csv, render_pdf

bp = Blueprint("sponsors", __name__, url_prefix="/sponsors", template_folder="templates")
READERS = ("sponsor", "lead", "admin")


@bp.before_request
def sponsor_language() -> None:
    user = auth.load_user()
    g.lang = user.language if user is not None else "en"


def _portal_or_403(slug: str):
    portals = current_app.extensions["portal.tenancy"].portals
    portal = portals.get(slug)
    if portal is None:
        abort(404)
    if g.user.role == "sponsor" and slug not in g.user.portal_list:
        abort(403)
    return portal


def build(slug: str | None, spec: str, tz: str = "UTC"):
    settings = current_app.extensions["portal.settings"]
    period = parse_period(spec, tz)
    return Figuring.from_settings(settings).report(slug, period, settings.sponsor_min_count)


def _audit(action: str, slug: str, period: str) -> None:
    record(action, actor_id=g.user.id, actor=g.user.email, target_type="portal",
           target_id=slug, details={"period": period})
    from portal.db import db

    db.session.commit()


@bp.get("/")
@auth.roles_required(*READERS)
def home() -> ResponseReturnValue:
    portals = current_app.extensions["portal.tenancy"].portals
    slugs = g.user.portal_list if g.user.role == "sponsor" else sorted(portals)
    mine = [portals[slug] for slug in slugs if slug in portals]
    return render_template("sponsors/home.html", portals=mine)


@bp.get("/<slug>/")
@auth.roles_required(*READERS)
def dashboard(slug: str) -> ResponseReturnValue:
    portal = _portal_or_403(slug)
    spec = request.args.get("period", "last-month")[:30]
    try:
        report = build(slug, spec, portal.timezone)
    except PeriodPurged as exc:
        return render_template("sponsors/home.html", portals=[portal], error=_(
            "Reports before %(day)s have been deleted under the retention rules. For earlier "
            "figures choose a month, a quarter or a year.", day=format_date(exc.held_from))), 400
    except PeriodError:
        return render_template("sponsors/home.html", portals=[portal], error=_(
            "This period is not understood. Use a month (2026-10), a quarter (2026-Q3), a year "
            "(2026) or two dates (2026-10-01..2026-10-15).")), 400
    _audit("sponsor.report.view", slug, report.current.period.key)
    return render_template("sponsors/report.html", portal=portal, spec=spec,
                           **page_context(report, portal.display_name(g.lang), g.lang))


def _download(slug: str, period: str, kind: str) -> ResponseReturnValue:
    portal = _portal_or_403(slug)
    try:
        report = build(slug, period, portal.timezone)
    except PeriodError:
        abort(404)
    _audit(f"sponsor.report.{kind}", slug, report.current.period.key)
    if kind == "pdf":
        body, mimetype = render_pdf(report, portal.display_name(g.lang), g.lang), "application/pdf"
    else:
        body, mimetype = render_csv(report), "text/csv"
    name = f"{slug}-{report.current.period.key}.{kind}".replace("..", "_")
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.get("/<slug>/<period>.pdf")
@auth.roles_required(*READERS)
def pdf(slug: str, period: str) -> ResponseReturnValue:
    return _download(slug, period, "pdf")


@bp.get("/<slug>/<period>.csv")
@auth.roles_required(*READERS)
def csv(slug: str, period: str) -> ResponseReturnValue:
    return _download(slug, period, "csv")
