"""Passwords (Argon2), the TOTP second factor, recovery codes, lockout and sessions."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import abort, current_app, g, redirect, request, session, url_for
from nacl.secret import SecretBox
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.db import db, utcnow

hasher = PasswordHasher()
MIN_PASSWORD = 12
MAX_PASSWORD = 256
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
RECOVERY_CODES = 10
ISSUER = "Portal"
# A hash to verify against when the email is unknown, so both answers take the same time.
@functools.cache
def _dummy_hash() -> str:
    """Made at the first password check of the process, whether the email is known or not,
    so that check too takes the same time either way; not at import, where it would cost
    every worker a third of a second of start-up."""
    return hasher.hash(secrets.token_urlsafe(16))


def _keys() -> dict:
    return current_app.extensions["portal.accounts"]


# -- passwords ------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return hasher.hash(password)


def password_problem(password: str, email: str = "") -> str | None:
    """A reason the password is refused, or None. Length beats composition rules."""
    if len(password) < MIN_PASSWORD:
        return "too_short"
    if len(password) > MAX_PASSWORD:
        return "too_long"
    if email and email.split("@")[0].lower() in password.lower():
        return "contains_email"
    return None


def check_password(user: User | None, password: str) -> bool:
    dummy = _dummy_hash()
    if user is None:
        with contextlib.suppress(VerificationError, InvalidHashError):
            hasher.verify(dummy, password)  # the same work as for a known email
        return False
    try:
        hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return True


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def register_failure(user: User | None) -> None:
    if user is None:
        return
    user.failed_logins += 1
    if user.failed_logins >= LOCK_AFTER:
        user.locked_until = utcnow() + LOCK_FOR
        user.failed_logins = 0


# -- second factor --------------------------------------------------------------------------


def new_totp_secret(user: User) -> str:
    secret = pyotp.random_base32()
    user.totp_sealed = SecretBox(_keys()["totp_key"]).encrypt(secret.encode())
    user.totp_enrolled = False
    return secret


def totp_secret(user: User) -> str:
    if user.totp_sealed is None:
        raise ValueError("no second factor")
    return SecretBox(_keys()["totp_key"]).decrypt(user.totp_sealed).decode()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def check_totp(user: User, code: str, now: float | None = None) -> bool:
    """A 6-digit code for this or the neighbouring 30-second step, never the same step twice."""
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6 or user.totp_sealed is None:
        return False
    totp = pyotp.TOTP(totp_secret(user))
    now = time.time() if now is None else now
    step = int(now // totp.interval)
    for candidate in (step - 1, step, step + 1):
        if candidate <= user.totp_last_step:
            continue
        if hmac.compare_digest(totp.at(candidate * totp.interval), code):
            user.totp_last_step = candidate
            return True
    return False


def _code_digest(code: str) -> str:
    normalised = "".join(ch for ch in code.lower() if ch.isalnum())
    return hmac.new(_keys()["recovery_key"], normalised.encode(), hashlib.sha256).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = ["".join(secrets.choice(alphabet) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    codes = [f"{c[:5]}-{c[5:]}" for c in codes]
    user.recovery_codes = json.dumps([_code_digest(c) for c in codes])
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    digests = json.loads(user.recovery_codes or "[]")
    digest = _code_digest(code)
    for stored in digests:
        if hmac.compare_digest(stored, digest):
            digests.remove(stored)
            user.recovery_codes = json.dumps(digests)
            return True
    return False


def remaining_recovery_codes(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


# -- sessions -------------------------------------------------------------------------------


def start_session(user: User) -> None:
    session.clear()
    session["uid"] = user.id
    session["ver"] = user.session_version
    session["seen"] = int(time.time())
    session.permanent = False
    user.last_login_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None


def end_session() -> None:
    session.clear()


def load_user() -> User | None:
    """The signed-in user, or None when signed out, idle too long, or the session is stale."""
    if "user" in g:
        return g.user
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return None
    user = db.session.get(User, uid)
    idle = current_app.extensions["portal.accounts"]["idle_seconds"]
    now = int(time.time())
    if (
        user is None
        or user.disabled
        or session.get("ver") != user.session_version
        or now - int(session.get("seen", 0)) > idle
    ):
        session.clear()
        return None
    session["seen"] = now
    g.user = user
    return user


def roles_required(*roles: str) -> Callable:
    """Sign-in with the second factor and one of ``roles``; otherwise to sign-in, or 403."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = load_user()
            if user is None:
                return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
            if user.must_change_password and request.endpoint != "accounts.change_password":
                return redirect(url_for("accounts.change_password"))
            if user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate
