"""Sign-in and sessions (issue 14, item 3): the lock before any check, a short single-use
pending sign-in, codes consumed once under concurrency (in the app and over a real threaded
server), sessions that end everywhere at sign-out and at an absolute lifetime, a backoff that
only delays, and CSRF tokens that end with the session. On SQLite and on PostgreSQL
(``PORTAL_TEST_DATABASE=postgresql``)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode

import pyotp
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, update
from werkzeug.serving import make_server

from portal.accounts import auth
from portal.accounts.models import User
from portal.assessment.audit import AuditEntry
from portal.db import db, utcnow
from portal.settings import SettingsError
from tests.conftest import CSRF_RE, csrf_token, make_settings
from tests.staff import StaffUser, make_user, sign_in, token

COOKIE = "portal_session"
THREADS = 8


@pytest.fixture
def staff(app) -> StaffUser:
    """An analyst who has enrolled the second factor and chosen a password, then signed out."""
    client = app.test_client()
    person = make_user("analyst")
    sign_in(client, person)
    client.post("/staff/logout", data={"csrf_token": token(client, "/staff/account/password")})
    return person


def account(staff: StaffUser) -> User:
    user = db.session.get(User, staff.user_id)
    db.session.refresh(user)
    return user


def cookie(client) -> str:
    return client.get_cookie(COOKIE).value


def client_with(app, value: str):
    """A new browser holding a copy of a session cookie."""
    client = app.test_client()
    client.set_cookie(COOKIE, value)
    return client


def password_step(client, staff: StaffUser, password: str | None = None):
    return client.post("/staff/login", data={
        "csrf_token": token(client, "/staff/login"), "email": staff.email,
        "password": staff.password if password is None else password})


def code_step(client, code: str):
    return client.post("/staff/login/code", data={
        "csrf_token": token(client, "/staff/login/code"), "code": code})


def pending(client) -> bool:
    with client.session_transaction() as session:
        return "pending_uid" in session


def signed_in(client) -> bool:
    return client.get("/staff/").status_code == 200


def audit_actions(user_id: int) -> list[tuple[str, dict]]:
    entries = db.session.scalars(select(AuditEntry).where(
        AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id))
        .order_by(AuditEntry.id)).all()
    return [(e.action, json.loads(e.details or "{}")) for e in entries]


def set_lock(staff: StaffUser, **values) -> None:
    db.session.execute(update(User).where(User.id == staff.user_id).values(**values))
    db.session.commit()


# -- the backoff ----------------------------------------------------------------------------------


def test_the_wait_grows_exponentially_and_is_capped():
    waits = [auth.backoff(n).total_seconds() for n in range(1, 13)]
    assert waits == [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900, 900]
    assert auth.backoff(10_000) == auth.MAX_WAIT == timedelta(minutes=15)


def test_attempts_while_waiting_are_not_verified_counted_or_lengthening(app, staff):
    client = app.test_client()
    for _ in range(5):
        assert password_step(client, staff, "wrong password here").status_code == 400
    waiting = account(staff)
    assert waiting.failed_logins == 5 and auth.is_locked(waiting)
    locked_until = waiting.locked_until
    for password in ("another wrong one", staff.password) * 5:
        response = password_step(client, staff, password)
        assert response.status_code == 400  # the right password too
        assert "is not right" in response.get_data(as_text=True)  # the one generic message
    after = account(staff)
    assert (after.failed_logins, after.locked_until) == (5, locked_until)
    assert not pending(client)
    refused = [d for action, d in audit_actions(staff.user_id) if action == "login.failed"]
    assert len(refused) == 15 and sum(d.get("refused", False) for d in refused) == 10


def test_the_wait_ends_by_itself_and_then_the_right_password_and_code_sign_in(app, staff):
    client = app.test_client()
    # Many failures, the last wait over: the count alone never keeps the owner out.
    set_lock(staff, failed_logins=40, locked_until=utcnow() - timedelta(seconds=1))
    assert password_step(client, staff).status_code == 302
    assert account(staff).failed_logins == 40  # a right password takes back only its own count
    assert code_step(client, staff.next_code()).status_code == 302
    assert signed_in(client)
    user = account(staff)
    assert (user.failed_logins, user.locked_until, user.sign_in_nonce) == (0, None, None)


def test_a_failure_makes_the_next_attempt_wait_the_backoff(app, staff):
    client = app.test_client()
    set_lock(staff, failed_logins=5, locked_until=utcnow() - timedelta(seconds=1))
    before = utcnow()
    assert password_step(client, staff, "wrong password here").status_code == 400
    user = account(staff)
    assert user.failed_logins == 6
    assert before + auth.backoff(6) <= user.locked_until <= utcnow() + auth.backoff(6)


# -- the lock comes before any code -----------------------------------------------------------------


def test_the_lock_is_checked_before_the_code_and_an_earlier_pending_cookie_is_refused(app, staff):
    """The review's finding: five wrong codes lock the account; the right code sent with the
    pending-sign-in cookie from before them signed in and cleared the lock."""
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    csrf = token(client, "/staff/login/code")
    earlier = cookie(client)
    for n in range(5):
        wrong = client.post("/staff/login/code", data={"csrf_token": csrf, "code": "000000"})
        assert wrong.status_code == (302 if n == 4 else 400)
    assert wrong.headers["Location"] == "/staff/login"
    step_before = account(staff).totp_last_step
    replay = client_with(app, earlier)
    response = replay.post("/staff/login/code", data={"csrf_token": csrf,
                                                      "code": staff.next_code()})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login"
    assert not signed_in(replay)
    user = account(staff)
    assert auth.is_locked(user) and user.failed_logins == 5  # not cleared
    assert user.totp_last_step == step_before  # the code was not even checked
    assert ("login.failed_code", {"refused": True}) in audit_actions(staff.user_id)


def test_a_lock_set_meanwhile_refuses_the_right_code_of_a_current_pending_sign_in(app, staff):
    owner, outsider = app.test_client(), app.test_client()
    assert password_step(owner, staff).status_code == 302
    csrf = token(owner, "/staff/login/code")
    for _ in range(5):  # someone who knows only the email
        assert password_step(outsider, staff, "a guessed password").status_code == 400
    step_before = account(staff).totp_last_step
    assert owner.get("/staff/login/code").headers["Location"] == "/staff/login"
    response = owner.post("/staff/login/code", data={"csrf_token": csrf,
                                                     "code": staff.next_code()})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login"
    assert not signed_in(owner)
    assert account(staff).totp_last_step == step_before
    # Once the wait is over, the owner signs in (the outsider only delayed them).
    set_lock(staff, locked_until=utcnow() - timedelta(seconds=1))
    assert password_step(owner, staff).status_code == 302
    assert code_step(owner, staff.next_code()).status_code == 302 and signed_in(owner)


def test_a_locked_account_cannot_enrol_either(app):
    client = app.test_client()
    newcomer = make_user("analyst", "newcomer@staff.example")
    assert password_step(client, newcomer).headers["Location"].startswith("/staff/enrol")
    page = client.get("/staff/enrol").get_data(as_text=True)
    secret = page.split('id="totp-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    csrf = CSRF_RE.search(page).group(1)
    set_lock(newcomer, locked_until=utcnow() + timedelta(minutes=5))
    code = pyotp.TOTP(secret.replace(" ", "")).now()
    response = client.post("/staff/enrol", data={"csrf_token": csrf, "code": code})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login"
    assert not account(newcomer).totp_enrolled


# -- the pending sign-in: short and single-use ---------------------------------------------------


def test_a_pending_sign_in_lasts_two_minutes(app, staff):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    csrf = token(client, "/staff/login/code")
    with client.session_transaction() as session:
        session["pending_at"] -= 121  # two minutes and a second ago
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"
    response = client.post("/staff/login/code", data={"csrf_token": csrf,
                                                      "code": staff.next_code()})
    assert response.headers["Location"] == "/staff/login" and not signed_in(client)
    assert auth.PENDING_SECONDS == 120


def test_a_copy_of_a_pending_sign_in_cannot_be_used_after_it(app, staff):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    csrf = token(client, "/staff/login/code")
    copy = cookie(client)
    assert code_step(client, staff.next_code()).status_code == 302 and signed_in(client)
    replay = client_with(app, copy)
    response = replay.post("/staff/login/code", data={"csrf_token": csrf,
                                                      "code": staff.next_code()})
    assert response.headers["Location"] == "/staff/login" and not signed_in(replay)


def test_each_code_attempt_replaces_the_pending_sign_in_and_a_newer_one_replaces_older(app, staff):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    csrf = token(client, "/staff/login/code")
    before_wrong = cookie(client)
    assert client.post("/staff/login/code",
                       data={"csrf_token": csrf, "code": "000000"}).status_code == 400
    stale = client_with(app, before_wrong)
    assert stale.get("/staff/login/code").headers["Location"] == "/staff/login"
    # A second sign-in (another browser) replaces the first one's pending state.
    other = app.test_client()
    assert password_step(other, staff).status_code == 302
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"
    assert code_step(other, staff.next_code()).status_code == 302 and signed_in(other)


# -- codes consumed once, under concurrency ---------------------------------------------------------


def concurrently(app, user_id: int, work) -> list:
    """``work(user)`` in THREADS threads at once, each in its own app context (so its own
    database session and connection), each committing; their results."""
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            with app.app_context():
                user = db.session.get(User, user_id)
                user.totp_last_step, user.recovery_codes  # noqa: B018 - read before the race
                barrier.wait()
                results[n] = work(user)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_one_totp_code_sent_concurrently_is_accepted_once(app, staff):
    code = staff.next_code()
    results = concurrently(app, staff.user_id, lambda user: auth.check_totp(user, code))
    assert results.count(True) == 1 and results.count(False) == THREADS - 1
    assert account(staff).totp_last_step == staff.last_step


def test_one_recovery_code_sent_concurrently_is_accepted_once(app, staff):
    code = staff.recovery_codes[0]
    results = concurrently(app, staff.user_id, lambda user: auth.use_recovery_code(user, code))
    assert results.count(True) == 1
    assert auth.remaining_recovery_codes(account(staff)) == len(staff.recovery_codes) - 1
    assert not auth.use_recovery_code(account(staff), code)


@pytest.fixture
def live_server(app):
    """The app under werkzeug's threaded server on loopback."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join()
    server.server_close()


def post_at_once(port: int, path: str, body: dict, session_cookie: str) -> list[tuple[int, str]]:
    """THREADS identical POSTs over their own connections, released together."""
    barrier = threading.Barrier(THREADS)
    answers: list = [None] * THREADS
    data = urlencode(body)

    def send(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        barrier.wait()
        connection.request("POST", path, body=data, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"{COOKIE}={session_cookie}"})
        response = connection.getresponse()
        response.read()
        answers[n] = (response.status, response.getheader("Location", ""))
        connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.parametrize("kind", ["totp", "recovery"])
def test_one_code_sent_concurrently_to_a_real_server_signs_in_once(app, staff, live_server, kind):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    csrf = token(client, "/staff/login/code")
    code = staff.next_code() if kind == "totp" else staff.recovery_codes[1]
    logins_before = [a for a, _ in audit_actions(staff.user_id)].count("login")
    answers = post_at_once(live_server, "/staff/login/code",
                           {"csrf_token": csrf, "code": code}, cookie(client))
    homes = [a for a in answers if a == (302, "/staff/")]
    assert len(homes) == 1, answers
    assert all(a == (302, "/staff/login") for a in answers if a not in homes), answers
    db.session.expire_all()
    logins = [a for a, _ in audit_actions(staff.user_id)].count("login")
    assert logins == logins_before + 1


# -- sessions that end -------------------------------------------------------------------------------


def test_sign_out_ends_every_copy_of_the_session_and_its_csrf_token(app, staff):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    assert code_step(client, staff.next_code()).status_code == 302
    staff_csrf = token(client, "/staff/account/password")
    public_csrf = csrf_token(client, "/demo/en/report")
    stolen = cookie(client)  # copied before sign-out, tokens and all
    assert signed_in(client_with(app, stolen))
    assert client.post("/staff/logout", data={"csrf_token": staff_csrf}).status_code == 302
    assert not signed_in(client)
    assert not signed_in(client_with(app, stolen))
    assert client_with(app, stolen).get("/staff/account/password").headers[
        "Location"].startswith("/staff/login")
    # Its tokens are no good either: on the public form (the input kept) and at sign-in.
    report = client_with(app, stolen).post("/demo/en/report", data={
        "csrf_token": public_csrf, "urls": "http://site.example.test/after-sign-out",
        "content_type": "images", "where_found": "website", "description": "kept text"})
    html = report.get_data(as_text=True)
    assert report.status_code == 400 and 'id="receipt"' not in html
    assert "Your session has expired" in html and "kept text" in html
    login = client_with(app, stolen).post("/staff/login", data={
        "csrf_token": staff_csrf, "email": staff.email, "password": staff.password})
    assert login.status_code == 400
    assert ("logout", {}) in audit_actions(staff.user_id)


def test_disable_ends_a_copied_session(app, staff):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    assert code_step(client, staff.next_code()).status_code == 302
    copy = client_with(app, cookie(client))
    admin_client, admin = app.test_client(), make_user("admin")
    sign_in(admin_client, admin)
    admin_client.post(f"/staff/users/{staff.user_id}/disable",
                      data={"csrf_token": token(admin_client, "/staff/users")})
    assert account(staff).disabled
    assert not signed_in(copy) and not signed_in(client)


def staff_client(app, staff: StaffUser):
    client = app.test_client()
    assert password_step(client, staff).status_code == 302
    assert code_step(client, staff.next_code()).status_code == 302
    return client


def set_signed_in_at(client, seconds_ago: int) -> None:
    with client.session_transaction() as session:
        session["at"] = int(time.time()) - seconds_ago


def test_a_session_ends_at_its_absolute_lifetime_even_when_in_use(app, staff):
    client = staff_client(app, staff)
    set_signed_in_at(client, 12 * 3600 - 120)  # two minutes left; in use ("seen" is fresh)
    assert signed_in(client)
    set_signed_in_at(client, 12 * 3600 + 60)
    assert not signed_in(client)
    assert app.extensions["portal.settings"].staff_session_hours == 12


def test_a_password_change_does_not_stretch_the_session(app, staff):
    client = staff_client(app, staff)
    set_signed_in_at(client, 12 * 3600 - 120)
    new = "a new pass phrase, long enough"
    assert client.post("/staff/account/password", data={
        "csrf_token": token(client, "/staff/account/password"), "current": staff.password,
        "new": new, "confirm": new}).status_code == 302
    assert signed_in(client)
    with client.session_transaction() as session:
        assert session["at"] <= int(time.time()) - 12 * 3600 + 120


def test_the_absolute_lifetime_is_a_setting(instance):
    assert make_settings(instance).staff_session_hours == 12
    assert make_settings(instance, env={"PORTAL_STAFF_SESSION_HOURS": "8"}).staff_session_hours == 8
    with pytest.raises(SettingsError, match="PORTAL_STAFF_SESSION_HOURS"):
        make_settings(instance, env={"PORTAL_STAFF_SESSION_HOURS": "0"})


# -- CSRF tokens expire with the session -----------------------------------------------------------


class _LongAgo(TimestampSigner):
    """Signs as if it were a minute past the absolute session lifetime ago."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 12 * 3600 - 60


def old_token(app, client) -> str:
    """The session's own CSRF token, signed longer ago than any session may last (Flask-WTF's
    serializer, with only the clock moved)."""
    with client.session_transaction() as session:
        raw = session["csrf_token"]
    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token",
                                  signer=_LongAgo).dumps(raw)


def test_csrf_tokens_expire_with_the_longest_session(app, staff):
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 12 * 3600
    client = app.test_client()
    fresh = token(client, "/staff/login")
    old = old_token(app, client)
    refused = client.post("/staff/login", data={"csrf_token": old, "email": staff.email,
                                                "password": staff.password})
    assert refused.status_code == 400 and not pending(client)
    accepted = client.post("/staff/login", data={"csrf_token": fresh, "email": staff.email,
                                                 "password": staff.password})
    assert accepted.status_code == 302


def test_a_citizens_expired_token_reshows_the_form_with_the_input_kept(app):
    client = app.test_client()
    csrf_token(client, "/demo/en/report")
    response = client.post("/demo/en/report", data={
        "csrf_token": old_token(app, client), "urls": "http://site.example.test/old-token",
        "content_type": "images", "where_found": "website", "description": "typed before"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="receipt"' not in html
    assert "Your session has expired" in html
    assert "site.example.test/old-token" in html and "typed before" in html
