"""Sign-in with a second factor, enrolment, recovery codes, password change, sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

import segno
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from markupsafe import Markup

from portal.accounts import auth
from portal.accounts.forms import CodeForm, LoginForm, PasswordForm
from portal.accounts.models import User
from portal.assessment.audit import record
from portal.db import db
from portal.security import limiter

bp = Blueprint("accounts", __name__, url_prefix="/staff", template_folder="templates")


@bp.before_app_request
def end_stale_session() -> None:
    """On every page, public ones too: a staff session that has ended (signed out elsewhere,
    idle, too old, password changed, account disabled) is emptied, CSRF token and all, so a
    copy of it opens nothing and none of its tokens is accepted."""
    if "uid" in session:
        auth.load_user()


@bp.before_request
def staff_language() -> None:
    """The signed-in user's language; before sign-in, the browser's best shipped language."""
    user = auth.load_user()
    shipped = current_app.extensions["portal.languages"]
    # A sponsor may read a language whose sponsors' pages are translated but not these: then
    # these pages are in English, whole, rather than half translated.
    if user:
        g.lang = user.language if user.language in shipped else "en"
    else:
        g.lang = request.accept_languages.best_match(shipped) or "en"


def audit(action: str, user: User, **details) -> None:
    # The account's row first, then the audit log's lock (PostgreSQL), in every transaction.
    db.session.flush()
    record(action, actor_id=user.id, actor=user.email, target_type="user", target_id=user.id,
           details=details or None)


def _safe_next(default: str) -> str:
    target = request.args.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return default


def _home(user: User) -> str:
    return url_for("sponsors.home") if user.role == "sponsor" else url_for("staff.queue")


def _login_limit() -> str:
    return current_app.extensions["portal.accounts"]["login_limit"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    error = None
    if request.method == "POST":
        if form.validate():
            user = auth.find_user(form.email.data)
            attempt = None
            if user is not None and not user.disabled:
                attempt = auth.claim_attempt(user)
                db.session.commit()  # counted before the password is checked
            if attempt is None:
                # Unknown, disabled or waiting: the same work, and nothing is verified.
                auth.check_password(None, form.password.data)
            elif auth.check_password(user, form.password.data):
                auth.forgive(user, attempt)
                auth.begin_pending(user)
                db.session.commit()
                nxt = {"next": request.args["next"]} if request.args.get("next") else {}
                if not user.totp_enrolled:
                    return redirect(url_for("accounts.enrol", **nxt))
                return redirect(url_for("accounts.code", **nxt))
            if user is not None:
                audit("login.failed", user, **({} if attempt else {"refused": True}))
                db.session.commit()
        # One message for every failure: unknown email, wrong password, locked or disabled.
        error = _("The email address or password is not right, or the account is locked. "
                  "Try again in a few minutes.")
        return render_template("accounts/login.html", form=form, error=error), 400
    return render_template("accounts/login.html", form=form, error=error)


def _finish(user: User) -> ResponseReturnValue:
    auth.start_session(user)
    audit("login", user)
    db.session.commit()
    return redirect(_safe_next(_home(user)))


def _pending() -> User | None:
    """The account of the pending sign-in, if that is still current; a code sent with one that
    is not (replaced by a later attempt or sign-in, or the account waiting) is audited."""
    user = auth.pending_user()
    if user is None or auth.pending_is_current(user):
        return user
    if request.method == "POST":
        audit("login.failed_code", user, refused=True)
        db.session.commit()
    return None


def _claim_code_attempt(user: User) -> bool:
    """The lock and the pending sign-in's nonce, checked (and the attempt counted) before any
    code is; False when refused, which is audited."""
    claimed = auth.claim_pending_attempt(user)
    db.session.commit()
    if not claimed:
        db.session.refresh(user)
        audit("login.failed_code", user, refused=True)
        db.session.commit()
    return claimed


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def code() -> ResponseReturnValue:
    user = _pending()
    if user is None or not user.totp_enrolled:
        return redirect(url_for("accounts.login"))
    form = CodeForm()
    if request.method == "POST" and form.validate():
        if not _claim_code_attempt(user):
            return redirect(url_for("accounts.login"))
        entered = form.code.data.strip()
        if auth.check_totp(user, entered):
            return _finish(user)
        if len(entered.replace("-", "")) == 10 and auth.use_recovery_code(user, entered):
            audit("login.recovery_code", user, remaining=auth.remaining_recovery_codes(user))
            return _finish(user)
        audit("login.failed_code", user)
        db.session.commit()
        if auth.is_locked(user):
            session.clear()
            return redirect(url_for("accounts.login"))
        form.code.errors = [_("This code is not right. Use the current code from your app, "
                              "or one of your recovery codes.")]
        return render_template("accounts/code.html", form=form), 400
    return render_template("accounts/code.html", form=form)


@bp.route("/enrol", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def enrol() -> ResponseReturnValue:
    user = _pending()
    if user is None or user.totp_enrolled:
        return redirect(url_for("accounts.login"))
    form = CodeForm()
    if request.method == "GET" or user.totp_sealed is None:
        secret = auth.new_totp_secret(user)
        db.session.commit()
    else:
        secret = auth.totp_secret(user)
    if request.method == "POST" and form.validate():
        if not _claim_code_attempt(user):
            return redirect(url_for("accounts.login"))
        if auth.check_totp(user, form.code.data):
            user.totp_enrolled = True
            codes = auth.new_recovery_codes(user)
            audit("second_factor.enrolled", user)
            auth.start_session(user)
            audit("login", user)
            db.session.commit()
            return render_template("accounts/recovery_codes.html", codes=codes,
                                   next=_safe_next(_home(user)))
        form.code.errors = [_("This code is not right. Check the time on your phone and try "
                              "again with the current code.")]
    qr = segno.make(auth.provisioning_uri(user, secret), error="m")
    # segno writes only <svg>/<path> markup with numbers, no text from the user.
    svg = Markup(qr.svg_inline(scale=5, dark="#000", light="#fff", omitsize=False))  # noqa: S704
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    status = 400 if form.errors else 200
    return render_template("accounts/enrol.html", form=form, qr=svg, secret=grouped), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = auth.load_user()
    form = CodeForm()  # only for its CSRF token
    form.validate()
    if not form.csrf_token.errors and user is not None:
        auth.end_session(user)
        audit("logout", user)
        db.session.commit()
    return redirect(url_for("accounts.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@auth.roles_required("analyst", "lead", "admin", "sponsor")
def change_password() -> ResponseReturnValue:
    user = g.user
    form = PasswordForm()
    if request.method == "POST" and form.validate():
        if not auth.check_password(user, form.current.data):
            form.current.errors = [_("This is not your current password.")]
        elif problem := auth.password_problem(form.new.data, user.email):
            form.new.errors = [{
                "too_short": _("Use at least %(num)d characters.", num=auth.MIN_PASSWORD),
                "too_long": _("This is too long."),
                "contains_email": _("Do not use your email address in your password."),
            }[problem]]
        else:
            user.password_hash = auth.hash_password(form.new.data)
            user.must_change_password = False
            user.session_version += 1  # every other session of this account ends
            audit("password.changed", user)
            auth.start_session(user, signed_in_at=session.get("at"))
            db.session.commit()
            return redirect(_home(user))
    status = 400 if form.errors else 200
    return render_template("accounts/password.html", form=form), status
