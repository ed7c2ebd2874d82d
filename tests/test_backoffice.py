"""The central back office: accounts with a second factor, every role against every staff
route, the queue, grouping, assessment, hosting trace (real DNS on loopback), notices (real
SMTP on loopback), status back to the edge, audit chain and welfare rules."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.app import create_app
from portal.assessment import welfare
from portal.assessment.audit import AuditEntry, verify_chain
from portal.assessment.models import Item, Report, WorkDay
from portal.assessment.services import ship_status_updates
from portal.db import db, utcnow
from portal.forwarding.forwarder import apply_status_updates
from tests.conftest import make_settings, portal_cli, receipt_of, submit_report
from tests.staff import StaffUser, make_user, report_into_centre, sign_in, token
from tests.test_forwarding import status_of
from tests.test_trace import dns_server, requirements  # noqa: F401 - fixtures

ROLES = ("analyst", "lead", "admin", "sponsor")


@pytest.fixture
def office(instance, dns_server, smtp_server):  # noqa: F811 - the fixture imported above
    port, _zone = dns_server
    controller, _handler = smtp_server
    env = {"PORTAL_DNS_RESOLVER": f"127.0.0.1:{port}",
           "PORTAL_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
           "PORTAL_MAIL_FROM": "team@central.example"}
    app = create_app(make_settings(instance, env=env))
    app.config["TESTING"] = True
    with app.app_context():
        yield app


@pytest.fixture
def mails(smtp_server):
    return smtp_server[1].envelopes


def signed_in(app, role: str, email: str | None = None) -> tuple:
    client = app.test_client()
    staff = make_user(role, email)
    sign_in(client, staff)
    return client, staff


# -- accounts --------------------------------------------------------------------------------------


def test_sign_in_needs_password_and_second_factor_then_own_password(office):
    client = office.test_client()
    staff = make_user("analyst")
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    sign_in(client, staff)
    assert len(staff.recovery_codes) == 10
    page = client.get("/staff/")
    assert page.status_code == 200 and 'id="queue"' in page.get_data(as_text=True)
    user = db.session.get(User, staff.user_id)
    assert user.totp_enrolled and not user.must_change_password
    assert user.password_hash.startswith("$argon2")
    assert b"JBSW" not in (user.totp_sealed or b"")  # sealed, not the base32 text


def test_enrolment_shows_a_server_rendered_qr_code(office):
    client = office.test_client()
    staff = make_user("analyst")
    client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                      "email": staff.email, "password": staff.password})
    page = client.get("/staff/enrol")
    html = page.get_data(as_text=True)
    assert '<svg' in html and "<script" not in html and 'id="totp-secret"' in html


def test_wrong_code_replayed_code_and_recovery_codes(office):
    client, staff = signed_in(office, "analyst")
    client.post("/staff/logout", data={"csrf_token": token(client, "/staff/account/password")})
    assert client.get("/staff/").status_code == 302
    client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                      "email": staff.email, "password": staff.password})
    csrf = token(client, "/staff/login/code")
    bad = client.post("/staff/login/code", data={"csrf_token": csrf, "code": "000000"})
    assert bad.status_code == 400
    replay = client.post("/staff/login/code", data={
        "csrf_token": csrf, "code": __import__("pyotp").TOTP(staff.secret).at(
            staff.last_step * 30)})
    assert replay.status_code == 400  # that step was used at enrolment
    code = staff.recovery_codes[0]
    ok = client.post("/staff/login/code", data={"csrf_token": csrf, "code": code})
    assert ok.status_code == 302
    client.post("/staff/logout", data={"csrf_token": token(client, "/staff/account/password")})
    client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                      "email": staff.email, "password": staff.password})
    again = client.post("/staff/login/code", data={"csrf_token": token(client, "/staff/login/code"),
                                                   "code": code})
    assert again.status_code == 400  # a recovery code works once


def test_lockout_after_repeated_failures_with_one_generic_message(office):
    client = office.test_client()
    staff = make_user("analyst")
    unknown = client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                                "email": "nobody@staff.example", "password": "x" * 12})
    for _ in range(5):
        wrong = client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                                  "email": staff.email, "password": "wrong" * 3})
        assert wrong.status_code == 400
    assert wrong.get_data(as_text=True).count("is not right") == unknown.get_data(as_text=True).count(
        "is not right") == 1
    locked = client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                               "email": staff.email, "password": staff.password})
    assert locked.status_code == 400  # the right password while locked
    user = db.session.get(User, staff.user_id)
    assert user.locked_until is not None and user.locked_until > utcnow()


def test_idle_timeout_and_password_change_end_sessions(office):
    client, staff = signed_in(office, "analyst")
    other = office.test_client()
    sign_in(other, staff)
    assert other.get("/staff/").status_code == 200
    new = "another long pass phrase"
    changed = client.post("/staff/account/password", data={
        "csrf_token": token(client, "/staff/account/password"), "current": staff.password,
        "new": new, "confirm": new})
    assert changed.status_code == 302
    assert client.get("/staff/").status_code == 200  # this session carries on
    assert other.get("/staff/").status_code == 302  # every other one has ended
    with client.session_transaction() as session:
        session["seen"] = session["seen"] - 31 * 60
    assert client.get("/staff/").status_code == 302


def test_short_password_refused(office):
    client, staff = signed_in(office, "analyst")
    response = client.post("/staff/account/password", data={
        "csrf_token": token(client, "/staff/account/password"), "current": staff.password,
        "new": "short", "confirm": "short"})
    assert response.status_code == 400 and "at least 12" in response.get_data(as_text=True)


def test_disabled_account_cannot_sign_in_and_is_signed_out(office):
    client, staff = signed_in(office, "analyst")
    admin_client, _admin = signed_in(office, "admin")
    admin_client.post(f"/staff/users/{staff.user_id}/disable",
                      data={"csrf_token": token(admin_client, "/staff/users")})
    assert client.get("/staff/").status_code == 302
    response = client.post("/staff/login", data={"csrf_token": token(client, "/staff/login"),
                                                 "email": staff.email, "password": staff.password})
    assert response.status_code == 400


# -- every role against every staff route ------------------------------------------------------------

GET_ROUTES = {
    "/staff/": {"analyst", "lead"},
    "/staff/reports/{report}": {"analyst", "lead"},
    "/staff/team": {"lead"},
    "/staff/audit": {"lead", "admin"},
    "/staff/audit.csv": {"lead", "admin"},
    "/staff/users": {"admin"},
    "/staff/portals": {"admin"},
    "/staff/account/password": {"analyst", "lead", "admin", "sponsor"},
    "/staff/overview": {"lead", "admin"},
    "/sponsors/": {"sponsor", "lead", "admin"},
    "/sponsors/{slug}/": {"sponsor", "lead", "admin"},
    "/sponsors/{slug}/{period}.pdf": {"sponsor", "lead", "admin"},
    "/sponsors/{slug}/{period}.csv": {"sponsor", "lead", "admin"},
}
POST_ROUTES = {
    "/staff/items/{item}/assess": {"analyst", "lead"},
    "/staff/items/{item}/trace": {"analyst", "lead"},
    "/staff/items/{item}/trace/correct": {"analyst", "lead"},
    "/staff/items/{item}/notice": {"analyst", "lead"},
    "/staff/items/{item}/hotline": {"analyst", "lead"},
    "/staff/items/{item}/police": {"analyst", "lead"},
    "/staff/items/{item}/removed": {"analyst", "lead"},
    "/staff/reports/{report}/assign": {"lead"},
    "/staff/break": {"analyst", "lead"},
    "/staff/audit/verify": {"lead", "admin"},
    "/staff/users": {"admin"},
    "/staff/users/{user}/disable": {"admin"},
    "/staff/users/{user}/reset": {"admin"},
}


def test_every_role_against_every_staff_route(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/role-check")
    ids = {"report": db.session.scalar(select(Report.id)), "item": db.session.scalar(select(Item.id)),
           "slug": "demo", "period": "2026-10",
           "user": make_user("analyst", "target@staff.example").user_id}
    # every staff route is in the tables above
    staff_rules = {r.rule for r in office.url_map.iter_rules()
                   if r.rule.startswith(("/staff", "/sponsors"))}
    def rule(path: str) -> str:
        path = path.replace("{slug}", "<slug>").replace("{period}", "<period>")
        return re.sub(r"\{(\w+)\}", lambda m: f"<int:{m.group(1)}_id>", path)

    listed = {rule(p) for p in [*GET_ROUTES, *POST_ROUTES]}
    public = {"/staff/login", "/staff/login/code", "/staff/enrol", "/staff/logout"}
    assert staff_rules - public == listed
    clients = {role: signed_in(office, role, f"{role}-matrix@staff.example")[0] for role in ROLES}
    clients["anonymous"] = office.test_client()
    for path, allowed in GET_ROUTES.items():
        url = path.format(**ids)
        for role, client in clients.items():
            status = client.get(url).status_code
            if role == "anonymous":
                assert status == 302, (url, role)
            elif role in allowed:
                assert status == 200, (url, role, status)
            else:
                assert status == 403, (url, role, status)
    for path, allowed in POST_ROUTES.items():
        url = path.format(**ids)
        for role, client in clients.items():
            if role in allowed:
                continue  # exercised with real effects in the journey tests
            csrf = token(client, "/staff/account/password") if role != "anonymous" else ""
            status = client.post(url, data={"csrf_token": csrf}).status_code
            assert status == (302 if role == "anonymous" else 403), (url, role, status)


def test_posts_without_csrf_are_refused(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/csrf")
    client, _ = signed_in(office, "lead")
    item = db.session.scalar(select(Item.id))
    assert client.post(f"/staff/items/{item}/removed").status_code == 400
    assert client.post(f"/staff/items/{item}/assess", data={"outcome": "not_illegal"}).status_code == 302
    assert db.session.get(Item, item).last_outcome is None


# -- queue, grouping, privacy ----------------------------------------------------------------------


def test_queue_urgent_first_then_oldest_with_keyset_pages(office):
    edge = office.test_client()
    for i in range(3):
        report_into_centre(office, edge, urls=f"host.example.test/q{i}")
    report_into_centre(office, edge, urls="host.example.test/urgent", child_in_danger="y")
    client, _ = signed_in(office, "analyst")
    html = client.get("/staff/").get_data(as_text=True)
    order = [int(x) for x in re.findall(r'href="/staff/reports/(\d+)"', html)]
    reports = {r.id: r for r in db.session.scalars(select(Report))}
    assert reports[order[0]].urgent
    assert order[1:] == sorted(order[1:])
    from portal.assessment.queue import Filters, queue_page

    first, cursor = queue_page(Filters(), 0, size=2)
    second, end = queue_page(Filters(), 0, after=cursor, size=2)
    assert [r.id for r in first + second] == order and end is None
    assert client.get("/staff/?portal=demo&lang=en&status=open&assignee=none").status_code == 200


def test_repeated_url_joins_the_existing_item_and_shows_its_last_outcome(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/same")
    report_into_centre(office, edge, lang="fr", urls="HTTP://HOST.example.test/same")
    items = db.session.scalars(select(Item)).all()
    assert len(items) == 1 and items[0].report_count == 2
    assert {r.lang for r in items[0].reports} == {"en", "fr"}
    client, _ = signed_in(office, "analyst")
    first, second = sorted(db.session.scalars(select(Report)), key=lambda r: r.received_at)
    client.get(f"/staff/reports/{first.id}")
    client.post(f"/staff/items/{items[0].id}/assess?report={first.id}", data={
        "csrf_token": token(client, f"/staff/reports/{first.id}"), "outcome": "not_illegal",
        "category": "", "age_group": ""})
    html = client.get(f"/staff/reports/{second.id}").get_data(as_text=True)
    assert 'data-outcome="not_illegal"' in html and "Reported 2 times" in html


def test_urls_are_defanged_and_never_links(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="https://host.example.test/a.jpg")
    client, _ = signed_in(office, "analyst")
    report = db.session.scalar(select(Report.id))
    html = client.get(f"/staff/reports/{report}").get_data(as_text=True)
    assert "hxxps://host[.]example[.]test/a.jpg" in html
    assert "https://host.example.test" not in html and "<img" not in html


def test_description_and_contact_only_for_the_assigned_analyst_and_leads(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/p", description="PRIVATE-NOTE",
                       contact_email="citizen@mail.example")
    report = db.session.scalar(select(Report.id))
    first, _ = signed_in(office, "analyst", "first@staff.example")
    second, _ = signed_in(office, "analyst", "second@staff.example")
    lead, _ = signed_in(office, "lead")
    mine = first.get(f"/staff/reports/{report}").get_data(as_text=True)
    assert "PRIVATE-NOTE" in mine and "citizen@mail.example" in mine
    theirs = second.get(f"/staff/reports/{report}").get_data(as_text=True)
    assert "PRIVATE-NOTE" not in theirs and "citizen@mail.example" not in theirs
    assert "is being worked on by" in theirs
    assert "PRIVATE-NOTE" in lead.get(f"/staff/reports/{report}").get_data(as_text=True)


# -- the whole assessment, with trace, notice, status back to the edge -----------------------------


def test_assess_trace_notify_remove_and_the_citizen_sees_it(office, mails):
    edge = office.test_client()
    receipt = receipt_of(submit_report(edge, urls="host.example.test/abuse",
                                       contact_email="citizen@mail.example"))
    report_into_centre(office, edge, urls="host.example.test/other")  # imports both
    client, staff = signed_in(office, "analyst")
    item = db.session.scalar(select(Item).where(Item.url == "http://host.example.test/abuse"))
    report = item.reports[0]
    client.get(f"/staff/reports/{report.id}")
    assert db.session.get(Report, report.id).status == "in_assessment"

    def post(path: str, **data):
        data["csrf_token"] = token(client, f"/staff/reports/{report.id}")
        return client.post(f"{path}?report={report.id}", data=data)

    post(f"/staff/items/{item.id}/assess", outcome="international_illegal", category="A",
         age_group="prepubescent", notes="")
    post(f"/staff/items/{item.id}/trace")
    db.session.refresh(item)
    assert item.trace_addresses == "192.0.2.10, 2001:db8::10"
    assert item.trace_error is None
    post(f"/staff/items/{item.id}/trace/correct", country="XA", asn="64500", network="Example Host")
    db.session.refresh(item)
    assert (item.trace_country, item.trace_asn, item.trace_corrected) == ("XA", "AS64500", True)

    post(f"/staff/items/{item.id}/notice", recipient="abuse@host.example")
    notice = [m for m in mails if m.rcpt_tos == ["abuse@host.example"]]
    assert len(notice) == 1
    body = notice[0].content.decode()
    assert "hxxp://host[.]example[.]test/abuse" in body and "citizen" not in body
    db.session.refresh(report)
    assert report.status == "action_taken"
    refused = post(f"/staff/items/{item.id}/notice", recipient="abuse@host.example")
    assert refused.status_code == 302 and len(mails) >= 1
    assert len([m for m in mails if m.rcpt_tos == ["abuse@host.example"]]) == 1  # not due yet

    post(f"/staff/items/{item.id}/hotline")  # XA has a (fictional) hotline in the data file
    assert any(m.rcpt_tos == ["report@hotline.xa.example"] for m in mails)
    post(f"/staff/items/{item.id}/police", reference="REF-1")
    post(f"/staff/items/{item.id}/removed")
    db.session.refresh(item)
    db.session.refresh(report)
    assert item.removed_at is not None and item.removal_seconds >= 0
    assert report.status == "closed"

    # The reporter who left an email heard of each change, with nothing about the content.
    feedback = [m for m in mails if m.rcpt_tos == ["citizen@mail.example"]]
    assert len(feedback) == 3  # in assessment, action taken, closed
    assert all("host" not in m.content.decode() for m in feedback)

    transport = office.extensions["portal.transport"]
    ship_status_updates(transport)
    apply_status_updates(transport)
    assert status_of(edge, receipt) == "closed"

    # Every step is in the audit log, and the chain holds.
    actions = [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    for expected in ("report.view", "report.assign", "item.assess", "item.trace",
                     "item.trace_corrected", "action.notice", "action.hotline_referral",
                     "action.police_referral", "action.removed", "login"):
        assert expected in actions
    assert verify_chain() == []
    assert staff.email in {e.actor for e in db.session.scalars(select(AuditEntry))}


def test_no_hotline_marks_law_enforcement_referral(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/le")
    client, _ = signed_in(office, "analyst")
    report = db.session.scalar(select(Report))
    item = report.items[0]
    client.get(f"/staff/reports/{report.id}")
    csrf = token(client, f"/staff/reports/{report.id}")
    client.post(f"/staff/items/{item.id}/assess", data={"csrf_token": csrf,
                                                        "outcome": "national_illegal",
                                                        "national_country": "XB", "category": "B",
                                                        "age_group": ""})
    client.post(f"/staff/items/{item.id}/trace/correct", data={"csrf_token": csrf, "country": "ZZ",
                                                               "asn": "", "network": ""})
    client.post(f"/staff/items/{item.id}/hotline", data={"csrf_token": csrf})
    db.session.refresh(item)
    assert item.law_enforcement_needed


def test_only_a_lead_reopens_an_assessed_item(office):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/reopen")
    analyst, _ = signed_in(office, "analyst")
    lead, _ = signed_in(office, "lead")
    report = db.session.scalar(select(Report))
    item = report.items[0]
    analyst.get(f"/staff/reports/{report.id}")
    data = {"outcome": "not_illegal", "category": "", "age_group": ""}
    analyst.post(f"/staff/items/{item.id}/assess", data={
        **data, "csrf_token": token(analyst, f"/staff/reports/{report.id}")})
    again = analyst.post(f"/staff/items/{item.id}/assess", data={
        **data, "outcome": "international_illegal",
        "csrf_token": token(analyst, f"/staff/reports/{report.id}")})
    assert again.status_code == 302
    db.session.refresh(item)
    assert item.last_outcome == "not_illegal"
    lead.post(f"/staff/items/{item.id}/assess", data={
        **data, "outcome": "international_illegal",
        "csrf_token": token(lead, f"/staff/reports/{report.id}")})
    db.session.refresh(item)
    assert item.last_outcome == "international_illegal"


# -- audit ---------------------------------------------------------------------------------------------


def test_audit_page_export_and_cli_verify(office, settings):
    client, _ = signed_in(office, "lead")
    assert "The chain is intact." in client.post(
        "/staff/audit/verify", data={"csrf_token": token(client, "/staff/audit")}
    ).get_data(as_text=True)
    csv = client.get("/staff/audit.csv")
    assert csv.mimetype == "text/csv" and "login" in csv.get_data(as_text=True)
    run = portal_cli(settings.instance_path, "audit", "verify")
    assert run.returncode == 0 and "audit log intact" in run.stdout
    db.session.execute(db.text("UPDATE audit_log SET actor = 'someone else' WHERE id = 1"))
    db.session.commit()
    run = portal_cli(settings.instance_path, "audit", "verify")
    assert run.returncode == 1 and "entry 1" in run.stderr


# -- welfare -------------------------------------------------------------------------------------------


def test_welfare_counts_time_prompts_breaks_and_warns_at_the_daily_limit(office):
    staff = make_user("analyst")
    user = db.session.get(User, staff.user_id)
    start = utcnow().replace(hour=8, minute=0, second=0, microsecond=0)
    for minute in range(0, 62, 2):
        row = welfare.track(user, start + timedelta(minutes=minute))
    assert row.seconds == 60 * 60 and row.stretch_seconds == 60 * 60
    assert "without a break" in welfare.message(row, 60, 300)
    row = welfare.track(user, start + timedelta(minutes=75))  # a 13-minute pause is a break
    assert row.stretch_seconds == 0 and row.seconds == 60 * 60
    assert welfare.message(row, 60, 300) is None
    row.seconds = 300 * 60
    assert "daily limit" in welfare.message(row, 60, 300)
    db.session.commit()
    lead, _ = signed_in(office, "lead")
    html = lead.get("/staff/team").get_data(as_text=True)
    assert "over the limit" in html
    assert db.session.get(WorkDay, (user.id, start.date().isoformat())).seconds == 300 * 60


def test_break_prompt_shows_on_assessment_pages(office):
    client, staff = signed_in(office, "analyst")
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/w")
    report = db.session.scalar(select(Report.id))
    day = welfare.track(db.session.get(User, staff.user_id))
    day.stretch_seconds = 61 * 60
    db.session.commit()
    html = client.get(f"/staff/reports/{report}").get_data(as_text=True)
    assert 'class="welfare"' in html and "without a break" in html
    client.post("/staff/break", data={"csrf_token": token(client, "/staff/account/password")})
    assert 'class="welfare"' not in client.get(f"/staff/reports/{report}").get_data(as_text=True)


def test_admin_creates_resets_accounts_and_sponsor_sees_only_its_portals(office):
    admin, _ = signed_in(office, "admin")
    created = admin.post("/staff/users", data={
        "csrf_token": token(admin, "/staff/users"), "email": "new.sponsor@ministry.example",
        "name": "New Sponsor", "role": "sponsor", "language": "fr", "portals": "demo"})
    html = created.get_data(as_text=True)
    password = re.search(r'id="one-time-password"[^>]*>([^<]+)<', html).group(1)
    email = "new.sponsor@ministry.example"
    sponsor = StaffUser(db.session.scalar(select(User.id).where(User.email == email)), email,
                        "sponsor", password)
    client = office.test_client()
    sign_in(client, sponsor)
    page = client.get("/sponsors/")
    assert page.status_code == 200 and 'lang="fr"' in page.get_data(as_text=True)
    assert client.get("/staff/").status_code == 403
    refused = admin.post("/staff/users", data={
        "csrf_token": token(admin, "/staff/users"), "email": "x@ministry.example", "name": "X",
        "role": "sponsor", "language": "en", "portals": "nowhere"})
    assert refused.status_code == 400


def test_renotice_becomes_due_after_the_interval(office, mails):
    edge = office.test_client()
    report_into_centre(office, edge, urls="host.example.test/renotice")
    client, _ = signed_in(office, "analyst")
    item = db.session.scalar(select(Item))
    report = item.reports[0]
    client.get(f"/staff/reports/{report.id}")
    csrf = token(client, f"/staff/reports/{report.id}")
    client.post(f"/staff/items/{item.id}/assess", data={"csrf_token": csrf,
                                                        "outcome": "international_illegal",
                                                        "category": "A", "age_group": ""})
    client.post(f"/staff/items/{item.id}/notice", data={"csrf_token": csrf,
                                                        "recipient": "abuse@host.example"})
    db.session.refresh(item)
    assert item.notice_due_at > utcnow() + timedelta(hours=47)
    item.notice_due_at = utcnow() - timedelta(minutes=1)  # the interval has passed
    db.session.commit()
    assert "A new notice is due." in client.get(f"/staff/reports/{report.id}").get_data(as_text=True)
    client.post(f"/staff/items/{item.id}/notice", data={"csrf_token": csrf,
                                                        "recipient": "abuse@host.example"})
    kinds = [e.action for e in db.session.scalars(select(AuditEntry))]
    assert "action.notice" in kinds and "action.renotice" in kinds
    renotices = [m for m in mails if m.rcpt_tos == ["abuse@host.example"]]
    assert len(renotices) == 2
    assert renotices[0].content != renotices[1].content


def test_admin_sees_the_portals(office):
    admin, _ = signed_in(office, "admin")
    html = admin.get("/staff/portals").get_data(as_text=True)
    assert "Demoland Reporting Portal" in html and "report.demo.example" in html


def test_users_cli_create_disable_reset(office, settings):
    def cli(*args):
        return portal_cli(settings.instance_path, "users", *args)

    made = cli("create", "--email", "cli@staff.example", "--name", "Cli", "--role", "lead")
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().rsplit(" ", 1)[-1]
    staff = StaffUser(db.session.scalar(select(User.id).where(User.email == "cli@staff.example")),
                      "cli@staff.example", "lead", password)
    client = office.test_client()
    sign_in(client, staff)
    assert client.get("/staff/team").status_code == 200
    assert cli("create", "--email", "s@staff.example", "--name", "S", "--role", "sponsor"
               ).returncode != 0  # a sponsor needs a portal
    assert cli("disable", "cli@staff.example").returncode == 0
    assert client.get("/staff/team").status_code == 302
    reset = cli("reset", "cli@staff.example")
    assert reset.returncode == 0
    db.session.expire_all()
    user = db.session.get(User, staff.user_id)
    assert not user.disabled and not user.totp_enrolled and user.must_change_password


def test_sign_in_attempts_are_rate_limited(instance):
    env = {"PORTAL_RATELIMIT_ENABLED": "true", "PORTAL_RATELIMIT_LOGIN": "3 per minute"}
    app = create_app(make_settings(instance, env=env))
    with app.app_context():
        client = app.test_client()
        codes = [client.post("/staff/login", data={
            "csrf_token": token(client, "/staff/login"), "email": "nobody@staff.example",
            "password": "x" * 12}).status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
