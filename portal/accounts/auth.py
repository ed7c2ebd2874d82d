"""Passwords (Argon2), the TOTP second factor, recovery codes, the sign-in backoff and sessions.

Sign-in backoff (per account)
    Every attempt on an account, the password or a code, is counted as a failure *before*
    anything is verified (``claim_attempt``: one conditional UPDATE, committed first), so
    parallel guesses cannot all slip in before the count; a right password takes its own count
    back (``forgive``), a completed sign-in clears it. After ``FREE_FAILURES`` failures in a
    row the account waits before its next attempt: 30 s, then twice as long after each further
    failure, never more than ``MAX_WAIT`` (15 min). While it waits, nothing is verified (the
    password is checked against a dummy hash for the same time) and attempts are neither
    counted nor make the wait longer; when the wait is over, a right password and code sign
    in, whatever the count.

    The choice: someone who knows only a staff email can make the account wait, never lock
    it: the wait ends by itself, is never longer than ``MAX_WAIT``, hammering during it
    changes nothing, and the owner's first right attempt after it signs in (a signed-in owner
    is not signed out). What remains: one wrong try timed at each end of the wait starts the
    next one, so a patient outsider can keep delaying the owner, at four tries an hour. The
    sign-in rate limit per (salted) client address bounds that, the audit log's
    ``login.failed`` entries show it, and an administrator's reset clears the count. Telling
    the owner's browser apart (device cookies) would close it; that is not done here.

Sessions
    A signed-in session holds the account's ``session_version``; signing out, changing the
    password, disabling and resetting the account move it on, which ends every copy of every
    session of that account (a cookie cannot be recalled, the version it names can). A
    session also ends after ``PORTAL_STAFF_IDLE_MINUTES`` without a request and, whatever its
    use, ``PORTAL_STAFF_SESSION_HOURS`` after sign-in. The CSRF token lives in the session,
    so it ends with it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import abort, current_app, g, redirect, request, session, url_for
from nacl.secret import SecretBox
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.accounts.models import User
from portal.db import db, utcnow

hasher = PasswordHasher()
MIN_PASSWORD = 12
MAX_PASSWORD = 256
FREE_FAILURES = 4
FIRST_WAIT = timedelta(seconds=30)
MAX_WAIT = timedelta(minutes=15)
# How long the second factor may take after the password.
PENDING_SECONDS = 120
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


def is_locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def backoff(failures: int) -> timedelta:
    """How long the account waits after its ``failures``-th failed attempt in a row."""
    if failures <= FREE_FAILURES:
        return timedelta(0)
    doublings = min(failures - FREE_FAILURES - 1, 10)  # the cap is reached well before
    return min(FIRST_WAIT * 2**doublings, MAX_WAIT)


def _update_if(user: User, conditions: list[ColumnElement[bool]], values: dict) -> bool:
    """``UPDATE users SET values WHERE id = user.id AND conditions``: True when the row
    changed, and ``user`` then holds the new values. Concurrent callers with the same
    conditions cannot both succeed: the second sees the first's row, once committed."""
    result = db.session.execute(
        update(User).where(User.id == user.id, *conditions).values(**values),
        execution_options={"synchronize_session": False})
    if result.rowcount != 1:
        return False
    for name, value in values.items():
        set_committed_value(user, name, value)
    return True


@dataclass(frozen=True)
class Attempt:
    failures_before: int


def claim_attempt(user: User, *, nonce: str | None = None,
                  new_nonce: str | None = None) -> Attempt | None:
    """Count one attempt as failed, before anything is verified; None when it may not be made:
    the account is waiting, or the account changed since it was read (a concurrent attempt),
    or ``nonce`` is not the account's pending sign-in nonce any more (then replaced by
    ``new_nonce`` in the same statement). The caller commits before verifying."""
    now = utcnow()
    if is_locked(user, now):
        return None
    before = user.failed_logins
    wait = backoff(before + 1)
    values: dict[str, object] = {"failed_logins": before + 1,
                                 "locked_until": now + wait if wait else None}
    conditions = [User.failed_logins == before,
                  or_(User.locked_until.is_(None), User.locked_until <= now)]
    if nonce is not None:
        conditions.append(User.sign_in_nonce == nonce)
        values["sign_in_nonce"] = new_nonce
    return Attempt(before) if _update_if(user, conditions, values) else None


def forgive(user: User, attempt: Attempt) -> None:
    """Take back the count of an attempt that succeeded (a right password), unless another
    attempt was counted after it."""
    _update_if(user, [User.failed_logins == attempt.failures_before + 1],
               {"failed_logins": attempt.failures_before, "locked_until": None})


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
    """A 6-digit code for this or the neighbouring 30-second step, never the same step twice:
    the step is taken by a conditional UPDATE, so of concurrent uses of one code one wins."""
    # ASCII digits only: "١٢٣٤٥٦" passes isdigit(), and compare_digest refuses non-ASCII text.
    code = "".join(ch for ch in code if ch in "0123456789")
    if len(code) != 6 or user.totp_sealed is None:
        return False
    totp = pyotp.TOTP(totp_secret(user))
    now = time.time() if now is None else now
    step = int(now // totp.interval)
    for candidate in (step - 1, step, step + 1):
        if candidate <= user.totp_last_step:
            continue
        if hmac.compare_digest(totp.at(candidate * totp.interval), code):
            return _update_if(user, [User.totp_last_step < candidate],
                              {"totp_last_step": candidate})
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
    """Take one recovery code out of the account's list, by a conditional UPDATE of the list
    as it was read: of concurrent uses of one code one wins (a concurrent use of another code
    is refused too, and may be tried again)."""
    read = user.recovery_codes or "[]"
    digests = json.loads(read)
    digest = _code_digest(code)
    for stored in digests:
        if hmac.compare_digest(stored, digest):
            digests.remove(stored)
            return _update_if(user, [User.recovery_codes == read],
                              {"recovery_codes": json.dumps(digests)})
    return False


def remaining_recovery_codes(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


# -- sessions -------------------------------------------------------------------------------


def begin_pending(user: User) -> None:
    """The password was right: the second factor is due within ``PENDING_SECONDS``. The
    session names a nonce kept on the account, replaced at every code attempt and cleared at
    sign-in, so a copy of an earlier pending session is of no use."""
    nonce = secrets.token_urlsafe(24)
    user.sign_in_nonce = nonce
    session.clear()
    session.update(pending_uid=user.id, pending_ver=user.session_version,
                   pending_nonce=nonce, pending_at=int(time.time()))


def pending_user() -> User | None:
    """The account whose sign-in waits for its second factor, or None: none, too late, or the
    account disabled or reset since. Whether it is still current is ``pending_is_current``."""
    uid = session.get("pending_uid")
    if uid is None or time.time() - session.get("pending_at", 0) > PENDING_SECONDS:
        return None
    user = db.session.get(User, uid)
    if user is None or user.disabled or user.session_version != session.get("pending_ver"):
        return None
    return user


def pending_is_current(user: User) -> bool:
    """The pending sign-in is the account's latest (its nonce) and the account is not waiting.
    A read, for pages; ``claim_pending_attempt`` checks both again in its UPDATE."""
    nonce = session.get("pending_nonce")
    return (isinstance(nonce, str) and user.sign_in_nonce is not None
            and hmac.compare_digest(user.sign_in_nonce, nonce) and not is_locked(user))


def claim_pending_attempt(user: User) -> bool:
    """``claim_attempt`` for a code of the pending sign-in, which it moves to a new nonce."""
    new_nonce = secrets.token_urlsafe(24)
    if claim_attempt(user, nonce=session["pending_nonce"], new_nonce=new_nonce) is None:
        return False
    session["pending_nonce"] = new_nonce
    return True


def start_session(user: User, signed_in_at: int | None = None) -> None:
    """A new session (and CSRF token) for ``user``; ``signed_in_at`` keeps the absolute end of
    the session being replaced."""
    now = int(time.time())
    session.clear()
    session.update(uid=user.id, ver=user.session_version, at=signed_in_at or now, seen=now)
    session.permanent = False
    user.last_login_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    user.sign_in_nonce = None


def end_session(user: User | None) -> None:
    """Sign-out: every copy of the session ends (and so every other session of the account)."""
    if user is not None:
        user.session_version += 1
    session.clear()


def load_user() -> User | None:
    """The signed-in user, or None when signed out, idle or signed in too long, or the session
    is stale; an ended session is emptied."""
    if "user" in g:
        return g.user
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return None
    user = db.session.get(User, uid)
    idle = current_app.extensions["portal.accounts"]["idle_seconds"]
    lifetime = current_app.extensions["portal.settings"].staff_session_hours * 3600
    now = int(time.time())
    if (
        user is None
        or user.disabled
        or session.get("ver") != user.session_version
        or now - int(session.get("seen", 0)) > idle
        or now - int(session.get("at", 0)) > lifetime
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
