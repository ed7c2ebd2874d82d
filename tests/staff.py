"""Helpers for back-office tests: accounts, signing in with TOTP, reports in the centre."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pyotp

from portal.accounts.models import User
from portal.assessment.views import create_account
from portal.db import db
from portal.forwarding.forwarder import forward_once
from portal.forwarding.importer import import_once
from tests.conftest import CSRF_RE, submit_report

PASSWORD = "correct horse battery staple"


@dataclass
class StaffUser:
    user_id: int
    email: str
    role: str
    password: str
    secret: str = ""
    recovery_codes: list[str] = field(default_factory=list)
    last_step: int = 0

    def next_code(self) -> str:
        """A TOTP code for a step not used yet (the server refuses a step twice)."""
        totp = pyotp.TOTP(self.secret)
        now = time.time()
        now_step = int(now // totp.interval)
        # The step before the current one is accepted too, but only use it while the current
        # step has more than ten seconds left, so no boundary passes before the server checks.
        step = max(self.last_step + 1, now_step - 1 if now % totp.interval < 20 else now_step)
        while step > now_step + 1:
            time.sleep(1)
            now_step = int(time.time() // totp.interval)
        self.last_step = step
        return totp.at(step * totp.interval)


def make_user(role: str, email: str | None = None, portals: list[str] | None = None) -> StaffUser:
    email = email or f"{role}@staff.example"
    user, password = create_account(email, role.title(), role, "en",
                                     portals if portals is not None else
                                     (["demo"] if role == "sponsor" else []))
    db.session.commit()
    return StaffUser(user.id, email, role, password)


def token(client, url: str) -> str:
    page = client.get(url)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return match.group(1)


def sign_in(client, staff: StaffUser) -> None:
    """Password, then enrol the second factor (first time) or give a code; then make sure the
    one-time password is replaced."""
    response = client.post("/staff/login", data={
        "csrf_token": token(client, "/staff/login"), "email": staff.email,
        "password": staff.password})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    if response.headers["Location"].startswith("/staff/enrol"):
        page = client.get("/staff/enrol").get_data(as_text=True)
        staff.secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
        csrf = CSRF_RE.search(page).group(1)
        done = client.post("/staff/enrol", data={"csrf_token": csrf, "code": staff.next_code()})
        assert done.status_code == 200, done.get_data(as_text=True)[:2000]
        staff.recovery_codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>",
                                          done.get_data(as_text=True))
    else:
        done = client.post("/staff/login/code", data={
            "csrf_token": token(client, "/staff/login/code"), "code": staff.next_code()})
        assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    user = db.session.get(User, staff.user_id)
    db.session.refresh(user)
    if user.must_change_password:
        changed = client.post("/staff/account/password", data={
            "csrf_token": token(client, "/staff/account/password"), "current": staff.password,
            "new": PASSWORD, "confirm": PASSWORD})
        assert changed.status_code == 302, changed.get_data(as_text=True)[:2000]
        staff.password = PASSWORD


def report_into_centre(app, client, **fields) -> None:
    """A citizen's report, forwarded and imported (all roles in one app)."""
    submit_report(client, **fields)
    ext = app.extensions
    forward_once(ext["portal.transport"])
    import_once(ext["portal.transport"], ext["portal.private_keys"], ext["portal.contact_key"])
