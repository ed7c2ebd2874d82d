"""The back office: queue, report and item work, team load, audit log, users."""

from __future__ import annotations

import io
import secrets
from datetime import timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from portal.accounts import auth
from portal.accounts.forms import UserForm
from portal.accounts.models import ROLES, User
from portal.assessment import backoffice as work
from portal.assessment import welfare
from portal.assessment.audit import export_csv, recent, verify_chain
from portal.assessment.display import reveal_controls
from portal.assessment.forms import (
    AGE_LABELS,
    OUTCOME_LABELS,
    AssessForm,
    NoticeForm,
    PlainForm,
    ReferenceForm,
    TraceCorrectionForm,
)
from portal.assessment.models import ILLEGAL, Action, Assessment, Item, Report
from portal.assessment.notices import defang
from portal.assessment.queue import Filters, decode_cursor, queue_page
from portal.assessment.services import contact_email
from portal.db import db, utcnow
from portal.i18n import language_name
from portal.inbound import record_id
from portal.statuses import ALL as STATUSES

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates")
ANALYSTS = ("analyst", "lead")
TRACKED = {"staff.report", "staff.assess", "staff.trace", "staff.correct_trace",
           "staff.notice", "staff.hotline", "staff.police", "staff.removed"}


def _refusal(code: str) -> str:
    messages = {
        "reopen": _("Only a lead analyst can reopen an assessed item."),
        "not_illegal": _("Actions are for items assessed as illegal."),
        "removed": _("This item is already confirmed removed."),
        "renotice_not_due": _("A new notice is not due yet."),
        "no_country": _("Trace the hosting country first."),
        "mail_failed": _("The mail could not be sent. Nothing was recorded; try again later."),
    }
    return messages.get(code, code)


@bp.before_request
def staff_context() -> None:
    g.lang = "en"
    user = auth.load_user()
    if user is not None:
        g.lang = user.language
    settings = current_app.extensions["portal.settings"]
    if user is not None and user.role in ANALYSTS and request.endpoint in TRACKED:
        day = welfare.track(user)
        g.welfare_message = welfare.message(day, settings.welfare_break_minutes,
                                            settings.welfare_daily_minutes)
        db.session.commit()


def _assess_form() -> AssessForm:
    form = AssessForm()
    categories = current_app.extensions["portal.settings"].severity_categories
    form.category.choices = [("", _("Not recorded"))] + [(c, c) for c in categories]
    return form


def _flash_errors(form) -> None:
    for field in form:
        for error in field.errors:
            flash(f"{field.label.text}: {error}", "error")


def _item_or_404(item_id: int) -> Item:
    item = db.session.get(Item, item_id)
    if item is None:
        abort(404)
    return item


def _back_to(item: Item) -> ResponseReturnValue:
    report_id = request.args.get("report", type=record_id)
    if report_id:
        return redirect(url_for("staff.report", report_id=report_id) + f"#item-{item.id}")
    return redirect(url_for("staff.queue"))


# -- queue ---------------------------------------------------------------------------------------


@bp.get("/")
@auth.roles_required(*ANALYSTS)
def queue() -> ResponseReturnValue:
    args = request.args
    filters = Filters(
        portal=args.get("portal", "")[:40], lang=args.get("lang", "")[:12],
        status=args.get("status", "open")[:20], outcome=args.get("outcome", "")[:30],
        assignee=args.get("assignee", "")[:12],
    )
    after = args.get("after", "")
    if after and decode_cursor(after) is None:
        abort(400)
    rows, next_cursor = queue_page(filters, g.user.id, after=after)
    settings = current_app.extensions["portal.settings"]
    now = utcnow()
    names = dict(db.session.execute(select(User.id, User.name)).all())
    portals = current_app.extensions["portal.tenancy"].portals
    return render_template(
        "staff/queue.html", rows=rows, next_cursor=next_cursor, filters=filters, now=now,
        target=lambda r: timedelta(hours=settings.urgent_target_hours if r.urgent
                                   else settings.target_hours),
        names=names, portals=sorted(portals), statuses=STATUSES, outcomes=OUTCOME_LABELS,
        analysts=db.session.scalars(select(User).where(User.role.in_(ANALYSTS))).all(),
        languages=current_app.extensions["portal.languages"], language_name=language_name,
    )


# -- a report and its items ----------------------------------------------------------------------


@bp.get("/reports/<int:report_id>")
@auth.roles_required(*ANALYSTS)
def report(report_id: int) -> ResponseReturnValue:
    found = db.session.get(Report, report_id)
    if found is None:
        abort(404)
    mine = work.open_report(found, g.user)
    db.session.commit()
    may_see_private = mine or g.user.role == "lead"
    assess_form = _assess_form()
    history = {
        item.id: db.session.scalars(select(Assessment).where(Assessment.item_id == item.id)
                                    .order_by(Assessment.id.desc())).all()
        for item in found.items
    }
    actions = {
        item.id: db.session.scalars(select(Action).where(Action.item_id == item.id)
                                    .order_by(Action.id)).all()
        for item in found.items
    }
    names = dict(db.session.execute(select(User.id, User.name)).all())
    return render_template(
        "staff/report.html", report=found, mine=mine, may_see_private=may_see_private,
        contact=contact_email(found, current_app.extensions["portal.contact_key"])
        if may_see_private else "",
        defang=defang, reveal_controls=reveal_controls, assess_form=assess_form,
        trace_form=TraceCorrectionForm(),
        notice_form=NoticeForm(), reference_form=ReferenceForm(), plain=PlainForm(),
        history=history, actions=actions, names=names, outcomes=OUTCOME_LABELS,
        ages=AGE_LABELS, can_assess=lambda item: work.can_assess(item, g.user),
        renotice_due=work.renotice_due, illegal=ILLEGAL,
        analysts=db.session.scalars(select(User).where(User.role.in_(ANALYSTS))).all(),
    )


@bp.post("/items/<int:item_id>/assess")
@auth.roles_required(*ANALYSTS)
def assess(item_id: int) -> ResponseReturnValue:
    form = _assess_form()
    if not form.validate():
        _flash_errors(form)
        return _back_to(_item_or_404(item_id))
    return _act(item_id, lambda item: work.assess(
        item, g.user, outcome=form.outcome.data,
        national_country=form.national_country.data or "", category=form.category.data or "",
        age_group=form.age_group.data or "", notes=(form.notes.data or "").strip(),
    ), done=_("Assessment saved."))


@bp.post("/items/<int:item_id>/trace")
@auth.roles_required(*ANALYSTS)
def trace(item_id: int) -> ResponseReturnValue:
    item = _item_or_404(item_id)
    if not PlainForm().validate():
        abort(400)
    work.save_trace(item, g.user, current_app.extensions["portal.tracer"].trace(item.url))
    db.session.commit()
    return _back_to(item)


@bp.post("/items/<int:item_id>/trace/correct")
@auth.roles_required(*ANALYSTS)
def correct_trace(item_id: int) -> ResponseReturnValue:
    item = _item_or_404(item_id)
    form = TraceCorrectionForm()
    if not form.validate():
        _flash_errors(form)
        return _back_to(item)
    work.correct_trace(item, g.user, country=form.country.data or "", asn=form.asn.data or "",
                       network=(form.network.data or "").strip())
    db.session.commit()
    return _back_to(item)


def _act(item_id: int, do, done: str | None = None) -> ResponseReturnValue:
    """Run one action on an item; commit it, or roll back and say why it was refused."""
    item = _item_or_404(item_id)
    try:
        do(item)
    except work.ActionRefused as exc:
        db.session.rollback()
        flash(_refusal(str(exc)), "error")
        return _back_to(item)
    db.session.commit()
    flash(done or _("Action recorded."), "info")
    return _back_to(item)


@bp.post("/items/<int:item_id>/notice")
@auth.roles_required(*ANALYSTS)
def notice(item_id: int) -> ResponseReturnValue:
    form = NoticeForm()
    if not form.validate():
        flash(_("Enter the provider's abuse email address."), "error")
        return _back_to(_item_or_404(item_id))
    return _act(item_id, lambda item: work.send_notice(item, g.user, form.recipient.data))


@bp.post("/items/<int:item_id>/hotline")
@auth.roles_required(*ANALYSTS)
def hotline(item_id: int) -> ResponseReturnValue:
    if not PlainForm().validate():
        abort(400)
    return _act(item_id, lambda item: work.refer_to_hotline(item, g.user))


@bp.post("/items/<int:item_id>/police")
@auth.roles_required(*ANALYSTS)
def police(item_id: int) -> ResponseReturnValue:
    form = ReferenceForm()
    if not form.validate():
        abort(400)
    return _act(item_id, lambda item: work.refer_to_police(item, g.user,
                                                          (form.reference.data or "").strip()))


@bp.post("/items/<int:item_id>/removed")
@auth.roles_required(*ANALYSTS)
def removed(item_id: int) -> ResponseReturnValue:
    if not PlainForm().validate():
        abort(400)
    return _act(item_id, lambda item: work.confirm_removed(item, g.user))


@bp.post("/reports/<int:report_id>/assign")
@auth.roles_required("lead")
def reassign(report_id: int) -> ResponseReturnValue:
    found = db.session.get(Report, report_id)
    if found is None or not PlainForm().validate():
        abort(404 if found is None else 400)
    to_id = request.form.get("to", type=record_id)
    to = db.session.get(User, to_id) if to_id else None
    if to is not None and to.role not in ANALYSTS:
        abort(400)
    work.reassign(found, g.user, to)
    db.session.commit()
    return redirect(url_for("staff.report", report_id=report_id))


@bp.post("/break")
@auth.roles_required(*ANALYSTS)
def take_break() -> ResponseReturnValue:
    if not PlainForm().validate():
        abort(400)
    welfare.take_break(g.user)
    work.audit(g.user, "welfare.break", "user", g.user.id)
    db.session.commit()
    flash(_("Break recorded. Take your time."), "info")
    return redirect(url_for("staff.queue"))


# -- leads: team load ----------------------------------------------------------------------------


@bp.get("/team")
@auth.roles_required("lead")
def team() -> ResponseReturnValue:
    settings = current_app.extensions["portal.settings"]
    return render_template("staff/team.html", rows=welfare.team_load(),
                           break_minutes=settings.welfare_break_minutes,
                           daily_minutes=settings.welfare_daily_minutes)


# -- leads and administrators: audit log ---------------------------------------------------------


@bp.get("/audit")
@auth.roles_required("lead", "admin")
def audit_log() -> ResponseReturnValue:
    before = request.args.get("before", type=record_id)
    entries = recent(limit=100, before_id=before)
    work.audit(g.user, "audit.view", "audit", before or 0)
    db.session.commit()
    return render_template("staff/audit.html", entries=entries, problems=None,
                           plain=PlainForm())


@bp.post("/audit/verify")
@auth.roles_required("lead", "admin")
def audit_verify() -> ResponseReturnValue:
    if not PlainForm().validate():
        abort(400)
    problems = verify_chain()
    work.audit(g.user, "audit.verify", "audit", 0, problems=len(problems))
    db.session.commit()
    return render_template("staff/audit.html", entries=recent(limit=100), problems=problems,
                           plain=PlainForm())


@bp.get("/audit.csv")
@auth.roles_required("lead", "admin")
def audit_export() -> ResponseReturnValue:
    work.audit(g.user, "audit.export", "audit", 0)
    db.session.commit()
    out = io.StringIO()
    export_csv(out)
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-log.csv"})


# -- leads and administrators: figures across all portals --------------------------------------


@bp.get("/overview")
@auth.roles_required("lead", "admin")
def overview() -> ResponseReturnValue:
    """The sponsors' figures for every portal together, and the portals side by side."""
    from portal.sponsors.periods import PeriodError
    from portal.sponsors.render import hours, page_context, show, shown_derived
    from portal.sponsors.views import build

    spec = request.args.get("period", "last-month")[:30]
    tenancy = current_app.extensions["portal.tenancy"]
    try:
        everything = build(None, spec)
        rows = []
        for slug, portal in sorted(tenancy.portals.items()):
            one = build(slug, spec, portal.timezone)
            rows.append((portal.display_name(g.lang),
                         *(show(one, name).text for name in (
                             "reports", "urls", "items_assessed", "confirmed_illegal", "removals")),
                         shown_derived(one, "removal_hours_median", "current", hours)))
    except PeriodError:
        abort(400)
    work.audit(g.user, "overview.view", "portal", "*", period=everything.current.period.key)
    db.session.commit()
    return render_template("staff/overview.html", rows=rows, spec=spec,
                           **page_context(everything, _("All portals"), g.lang))


# -- administrators: portals ----------------------------------------------------------------------


@bp.get("/portals")
@auth.roles_required("admin")
def portals() -> ResponseReturnValue:
    """Every country portal as its theme folder defines it, with a link to preview it.
    Portals change by editing themes/<slug>/ and 'portal themes check', not code."""
    tenancy = current_app.extensions["portal.tenancy"]
    settings = current_app.extensions["portal.settings"]
    return render_template("staff/portals.html", portals=sorted(tenancy.portals.values(),
                                                                key=lambda p: p.slug),
                           default_captcha=settings.captcha, language_name=language_name)


# -- administrators: users -----------------------------------------------------------------------


@bp.get("/users")
@auth.roles_required("admin")
def users() -> ResponseReturnValue:
    everyone = db.session.scalars(select(User).order_by(User.role, User.email)).all()
    return render_template("staff/users.html", users=everyone, form=_user_form(), plain=PlainForm(),
                           created=None)


def _user_form() -> UserForm:
    form = UserForm()
    staff = current_app.extensions["portal.languages"]
    sponsors = current_app.extensions["portal.sponsor_languages"]
    languages = (*staff, *(code for code in sponsors if code not in staff))
    form.language.choices = [(code, language_name(code)) for code in languages]
    return form


def language_refusal(role: str, language: str) -> str | None:
    """Why an account of ``role`` cannot read ``language``: a sponsor reads the sponsors'
    catalogue, everyone else the back office's; each must be complete in that language."""
    key = "portal.sponsor_languages" if role == "sponsor" else "portal.languages"
    if language in current_app.extensions[key]:
        return None
    if role == "sponsor":
        return _("The sponsor pages are not yet translated completely into this language.")
    return _("The back office is not yet translated completely into this language.")


@bp.post("/users")
@auth.roles_required("admin")
def create_user() -> ResponseReturnValue:
    form = _user_form()
    everyone = db.session.scalars(select(User).order_by(User.role, User.email)).all()
    if not form.validate():
        return render_template("staff/users.html", users=everyone, form=form, plain=PlainForm(),
                               created=None), 400
    portals = current_app.extensions["portal.tenancy"].portals
    wanted = [p.strip() for p in (form.portals.data or "").split(",") if p.strip()]
    if form.role.data == "sponsor" and (not wanted or any(p not in portals for p in wanted)):
        form.portals.errors = [_("Name one or more existing portals.")]
    elif auth.find_user(form.email.data):
        form.email.errors = [_("An account with this email address exists already.")]
    elif refusal := language_refusal(form.role.data, form.language.data):
        form.language.errors = [refusal]
    if form.errors:
        return render_template("staff/users.html", users=everyone, form=form, plain=PlainForm(),
                               created=None), 400
    user, password = create_account(form.email.data.strip(), form.name.data.strip(),
                                    form.role.data, form.language.data,
                                    wanted if form.role.data == "sponsor" else [])
    work.audit(g.user, "user.create", "user", user.id, role=user.role)
    db.session.commit()
    everyone = db.session.scalars(select(User).order_by(User.role, User.email)).all()
    return render_template("staff/users.html", users=everyone, form=_user_form(), plain=PlainForm(),
                           created=(user, password))


def create_account(email: str, name: str, role: str, language: str = "en",
                   portals: list[str] | None = None) -> tuple[User, str]:
    """A new account with a one-time password that must be changed at first sign-in."""
    if role not in ROLES:
        raise ValueError(role)
    password = temporary_password()
    user = User(email=email.lower(), name=name, role=role, language=language,
                portals=",".join(portals or []), password_hash=auth.hash_password(password),
                must_change_password=True)
    db.session.add(user)
    db.session.flush()
    return user, password


def temporary_password() -> str:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


@bp.post("/users/<int:user_id>/disable")
@auth.roles_required("admin")
def disable_user(user_id: int) -> ResponseReturnValue:
    user = db.session.get(User, user_id)
    if user is None or not PlainForm().validate() or user.id == g.user.id:
        abort(400)
    user.disabled = True
    user.session_version += 1
    work.audit(g.user, "user.disable", "user", user.id)
    db.session.commit()
    return redirect(url_for("staff.users"))


@bp.post("/users/<int:user_id>/reset")
@auth.roles_required("admin")
def reset_user(user_id: int) -> ResponseReturnValue:
    user = db.session.get(User, user_id)
    if user is None or not PlainForm().validate():
        abort(400)
    password = reset_account(user)
    work.audit(g.user, "user.reset", "user", user.id)
    db.session.commit()
    everyone = db.session.scalars(select(User).order_by(User.role, User.email)).all()
    return render_template("staff/users.html", users=everyone, form=_user_form(), plain=PlainForm(),
                           created=(user, password))


def reset_account(user: User) -> str:
    """New one-time password, second factor to enrol again, every session ended."""
    password = temporary_password()
    user.password_hash = auth.hash_password(password)
    user.must_change_password = True
    user.totp_sealed, user.totp_enrolled, user.recovery_codes = None, False, "[]"
    user.failed_logins, user.locked_until, user.disabled = 0, None, False
    user.session_version += 1
    return password
