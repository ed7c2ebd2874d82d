"""What a request must be (portal/inbound.py): for a host this deployment serves, never a
redirect built from another; form bodies urlencoded only (415 otherwise, localized); every
malformed parameter a 4xx, never a 500 (a cursor, a period, an id past the database's integer,
a NUL). On SQLite and, with PORTAL_TEST_DATABASE=postgresql, on PostgreSQL."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.app import create_app
from portal.assessment.models import Report
from portal.assessment.queue import decode_cursor, encode_cursor
from portal.db import db
from portal.forwarding.models import OutboxEnvelope
from portal.settings import SettingsError
from tests.conftest import csrf_token, database_env, make_settings, receipt_of, submit_report
from tests.ports import free_port
from tests.staff import make_user, report_into_centre, sign_in, token

UNSUPPORTED = "This page takes only what its own form sends. Please go back and use the form."
EVIL = "evil.example.test"


def app_with(instance, **env: str):
    app = create_app(make_settings(instance, env=env))
    app.config["TESTING"] = True
    return app


def signed_in(app, role: str):
    client = app.test_client()
    sign_in(client, make_user(role))
    return client


# -- hosts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/staff", "/sponsors", "/demo", "/demo/en/report", "/healthz",
                                  "/nowhere/", "/staff/login"])
def test_an_untrusted_host_gets_400_and_nothing_built_from_it(client, path):
    for host in (EVIL, f"{EVIL}:8080", "localhost.evil.example.test"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 400, (host, path)
        assert "Location" not in response.headers
        assert "evil" not in response.get_data(as_text=True)
    # A form sent to an untrusted host is refused the same way, whatever else is wrong with it.
    posted = client.post("/demo/en/report?x=%00", headers={"Host": EVIL}, json={"a": 1})
    assert posted.status_code == 400 and db.session.query(OutboxEnvelope).count() == 0


def test_served_hosts_answer_and_redirect_to_themselves(client):
    missing_slash = client.get("/staff")
    assert missing_slash.status_code == 308
    assert missing_slash.headers["Location"] == "http://localhost/staff/"
    on_ip = client.get("/staff", headers={"Host": "127.0.0.1:5000"})
    assert on_ip.headers["Location"] == "http://127.0.0.1:5000/staff/"
    # A portal's own host name, from its manifest, is served without being configured.
    assert client.get("/en/", base_url="http://report.demo.example").status_code == 200


def test_configured_hosts_replace_the_loopback_default(instance):
    assert make_settings(instance).trusted_hosts == ("localhost", "127.0.0.1")
    app = app_with(instance, PORTAL_TRUSTED_HOSTS="backoffice.example.test, .portal.example")
    client = app.test_client()
    with app.app_context():
        for host, status in (("backoffice.example.test", 200), ("portal.example", 200),
                             ("de.portal.example", 200), ("report.demo.example", 200),
                             ("localhost", 400), ("portal.example.evil.example.test", 400)):
            assert client.get("/healthz", headers={"Host": host}).status_code == status, host


def test_the_trusted_hosts_setting_is_checked_at_start(instance):
    with pytest.raises(SettingsError) as error:
        make_settings(instance, env={
            "PORTAL_TRUSTED_HOSTS": "http://a.example, a.example:80, ::1, b_c.example"})
    assert len(error.value.problems) == 4
    assert all(p.startswith("PORTAL_TRUSTED_HOSTS: ") for p in error.value.problems)
    with pytest.raises(SettingsError, match="name at least one host"):
        make_settings(instance, env={"PORTAL_TRUSTED_HOSTS": " , "})


def test_behind_the_proxy_the_forwarded_host_is_the_one_checked(instance):
    app = app_with(instance, PORTAL_PROXY_HOPS="1")
    client = app.test_client()
    with app.app_context():
        refused = client.get("/staff", headers={"X-Forwarded-Host": EVIL})
        assert refused.status_code == 400 and "Location" not in refused.headers
        portal = client.get("/en/", headers={"X-Forwarded-Host": "report.demo.example"})
        assert portal.status_code == 200 and 'lang="en"' in portal.get_data(as_text=True)
        secure = client.get("/staff", headers={"X-Forwarded-Host": "localhost",
                                               "X-Forwarded-Proto": "https"})
        assert secure.headers["Location"] == "https://localhost/staff/"


def test_without_a_proxy_a_forwarded_host_is_ignored(client):
    response = client.get("/staff", headers={"X-Forwarded-Host": EVIL})
    assert response.headers["Location"] == "http://localhost/staff/"


# -- bodies --------------------------------------------------------------------------------------


def bodies(csrf: str) -> dict[str, dict]:
    """What the review sent instead of a form, each with a valid CSRF token where it can."""
    return {
        "multipart file in urls": {"data": {
            "csrf_token": csrf, "urls": (io.BytesIO(b"http://site.example.test/\n"), "u.txt")}},
        "deeply nested JSON": {"data": "[" * 10_000 + "]" * 10_000,
                               "content_type": "application/json"},
        "JSON with a dict as description": {"data": json.dumps({
            "csrf_token": csrf, "urls": "http://site.example.test/", "description": {"a": 1}}),
            "content_type": "application/json"},
        "plain text": {"data": f"csrf_token={csrf}\nurls=http://site.example.test/",
                       "content_type": "text/plain"},
    }


@pytest.mark.parametrize("kind", list(bodies("")))
@pytest.mark.parametrize("form", ["report", "status"])
def test_public_forms_take_urlencoded_bodies_only(app, client, kind, form):
    url = f"/demo/fr/{form}"
    response = client.post(url, **bodies(csrf_token(client, url))[kind])
    assert response.status_code == 415
    html = response.get_data(as_text=True)
    with app.test_request_context(), force_locale("fr"):
        message, code = gettext(UNSUPPORTED), gettext("Error code: %(code)s", code=415)
    assert '<html lang="fr" dir="ltr">' in html and f"<h1>{escape(message)}</h1>" in html
    assert code != "Error code: 415" and f"<p>{code}</p>" in html
    assert db.session.query(OutboxEnvelope).count() == 0


def test_a_urlencoded_report_and_a_bare_button_still_work(client):
    assert receipt_of(submit_report(client, lang="fr"))
    assert client.post("/staff/logout").status_code == 302  # no body, no type


@pytest.mark.parametrize("kind", list(bodies("")))
def test_back_office_forms_never_fail_on_another_body(app, kind):
    anonymous = app.test_client()
    login = anonymous.post("/staff/login", **bodies(token(anonymous, "/staff/login"))[kind])
    assert login.status_code == 415
    report_into_centre(app, anonymous)
    analyst = signed_in(app, "analyst")
    report_id = db.session.scalar(select(func.max(Report.id)))
    item_id = db.session.get(Report, report_id).items[0].id
    csrf = token(analyst, f"/staff/reports/{report_id}")
    assess = analyst.post(f"/staff/items/{item_id}/assess", **bodies(csrf)[kind])
    assert assess.status_code == 415
    assert "415" in assess.get_data(as_text=True)


# -- parameters ----------------------------------------------------------------------------------


def test_a_malformed_queue_cursor_is_a_400(app, client):
    report_into_centre(app, client)
    analyst = signed_in(app, "analyst")
    for after in ("0-" + "9" * 50 + "-1", "0-1-" + "9" * 30, "1-" + "9" * 18 + "-1", "2-1-1",
                  "1-2", "x", "0-1-1-1", "0-¹-1", " 0-1-1"):
        assert analyst.get("/staff/", query_string={"after": after}).status_code == 400, after
    report = db.session.scalars(select(Report)).first()
    cursor = encode_cursor(report)
    assert decode_cursor(cursor) == (report.urgent, report.received_at, report.id)
    assert analyst.get("/staff/", query_string={"after": cursor}).status_code == 200


def test_ids_past_the_database_integer_name_nothing(app):
    lead = signed_in(app, "lead")
    for number in (2**31, 2**63, 10**30):
        assert lead.get(f"/staff/reports/{number}").status_code == 404
        assert lead.post(f"/staff/items/{number}/removed",
                         data={"csrf_token": token(lead, "/staff/audit")}).status_code == 404
        # In a query string an id that cannot exist is one not given.
        assert lead.get("/staff/audit", query_string={"before": number}).status_code == 200
    assert lead.get("/staff/reports/2147483647").status_code == 404  # the largest id: looked up


def test_a_control_character_in_the_path_or_the_query_is_a_400(app, client):
    analyst = signed_in(app, "analyst")
    assert analyst.get("/staff/", query_string={"portal": "de\x00mo"}).status_code == 400
    assert analyst.get("/staff/", query_string={"assignee": "\x1b"}).status_code == 400
    assert analyst.get("/staff/", query_string={"x\x00": "1"}).status_code == 400
    assert client.get("/staff/%00").status_code == 400
    assert client.get("/demo/en%00/report").status_code == 404  # no such language: first
    assert client.get("/demo/en/report", query_string={"q": "\n"}).status_code == 400
    assert analyst.get("/staff/", query_string={"portal": "demo"}).status_code == 200


def test_a_static_file_name_too_long_for_the_file_system_is_404(client):
    # Found by the fuzzer: the file system's "name too long" error ended as a 500.
    for name in ("0" * 300, "a/" * 3000 + "x"):
        assert client.get(f"/_static/_default/{name}").status_code == 404
        assert client.get(f"/_static/demo/{name}").status_code == 404
    assert client.get("/_static/_default/portal.css").status_code == 200


def test_a_nul_in_a_back_office_form_is_a_400(app):
    """PostgreSQL cannot hold a NUL in text: refused before any form reads it, on both."""
    admin = signed_in(app, "admin")
    before = db.session.scalar(select(func.count(User.id)))
    created = admin.post("/staff/users", data={
        "csrf_token": token(admin, "/staff/users"), "email": "new@staff.example",
        "name": "New\x00Name", "role": "analyst", "language": "en", "portals": ""})
    assert created.status_code == 400
    assert db.session.scalar(select(func.count(User.id))) == before
    anonymous = app.test_client()
    login = anonymous.post("/staff/login", data={
        "csrf_token": token(anonymous, "/staff/login"), "email": "admin@staff.example\x00",
        "password": "x"})
    assert login.status_code == 400 and "<form" not in login.get_data(as_text=True)


def test_an_assignee_that_is_no_id_matches_nobody(app):
    # "²" passed str.isdigit() and failed int(); a number past PostgreSQL's INTEGER (found by
    # the fuzzer) failed the query there.
    analyst = signed_in(app, "analyst")
    for assignee in ("²", "١٢", "me", "none", "7", "2147483648", "922337203685"):
        assert analyst.get("/staff/", query_string={"assignee": assignee}).status_code == 200


def test_periods_past_what_a_date_holds_are_refused(app):
    sponsor = signed_in(app, "sponsor")
    for period in ("9999-12", "9999", "0000-01", "0001", "9999-12-01..9999-12-31",
                   "0001-01-01..0001-01-02"):
        page = sponsor.get("/sponsors/demo/", query_string={"period": period})
        assert page.status_code == 400, period
        assert "This period is not understood" in page.get_data(as_text=True)
        assert sponsor.get(f"/sponsors/demo/{period}.csv").status_code == 404, period
    assert sponsor.get("/sponsors/demo/", query_string={"period": "2026-10"}).status_code == 200


def test_the_demo_serves_the_host_it_listens_on(tmp_path):
    """`portal demo --host H` is reached on H as well as on the loopback names."""
    port, host = free_port(), "127.0.0.2"
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
           **database_env(tmp_path / "instance")}
    env.pop("PORTAL_SECRET_KEY", None)
    demo = subprocess.Popen([sys.executable, "-m", "portal.cli", "demo", "--host", host,
                             "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as ok:
                    assert ok.status == 200
                break
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and demo.poll() is None, "demo did not start"
                time.sleep(0.3)
        # Sent by hand, so that no redirect is ever followed to the host named.
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", "/staff", headers={"Host": EVIL})
            refused = connection.getresponse()
            refused.read()
        finally:
            connection.close()
        assert refused.status == 400 and refused.getheader("Location") is None
    finally:
        demo.terminate()
        demo.wait(timeout=30)


def test_a_code_in_other_digits_is_a_wrong_code(app):
    # "١٢٣٤٥٦" passed str.isdigit() and then failed hmac.compare_digest (a 500).
    staff = make_user("analyst")
    sign_in(app.test_client(), staff)
    client = app.test_client()
    login = client.post("/staff/login", data={
        "csrf_token": token(client, "/staff/login"), "email": staff.email,
        "password": staff.password})
    assert login.headers["Location"].startswith("/staff/login/code")
    code = client.post("/staff/login/code", data={
        "csrf_token": token(client, "/staff/login/code"), "code": "١٢٣٤٥٦"})
    assert code.status_code == 400 and "This code is not right" in code.get_data(as_text=True)
