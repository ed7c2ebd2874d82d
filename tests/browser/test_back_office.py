"""The analyst's whole journey in real headless Chromium: sign in with a TOTP second factor,
take the oldest report, assess, trace (real DNS on loopback), send a notice (real SMTP on
loopback), confirm removal, and see the reporter's status change on the public page."""

from __future__ import annotations

import re

import pyotp
import pytest

from portal.app import create_app
from portal.assessment.services import ship_status_updates
from portal.forwarding.forwarder import apply_status_updates, forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.keyring import generate
from tests.browser.conftest import LiveServer
from tests.browser.pages import PortalPages
from tests.conftest import make_settings
from tests.staff import PASSWORD, make_user
from tests.test_trace import dns_server, requirements  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


class BackOffice:
    """Page object for the back office."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.last_step = 0

    def code(self, secret: str) -> str:
        import time

        totp = pyotp.TOTP(secret)
        # The server accepts the current step and its two neighbours, each step once. The one
        # before the current step saves waiting, but only while the current step has more than
        # ten seconds left: otherwise the boundary can pass between this and the server's
        # check, and the code is two steps old when it arrives (seen once in CI).
        now = time.time()
        floor = int(now // 30) - 1 if now % 30 < 20 else int(now // 30)
        step = max(self.last_step + 1, floor)
        while step > int(time.time() // 30) + 1:
            time.sleep(1)
        self.last_step = step
        return totp.at(step * 30)

    def sign_in_first_time(self, email: str, one_time: str) -> list[str]:
        self.page.goto(f"{self.base}/staff/login")
        self.page.fill("#email", email)
        self.page.fill("#password", one_time)
        self.page.click("main button[type=submit]")
        assert "/staff/enrol" in self.page.url
        assert self.page.locator("figure.qr svg").count() == 1
        secret = self.page.text_content("#totp-secret").replace(" ", "")
        self.page.fill("#code", self.code(secret))
        self.page.click("main button[type=submit]")
        codes = self.page.locator("#recovery-codes code").all_text_contents()
        self.page.click("text=I have saved my codes")
        assert "/staff/account/password" in self.page.url
        self.page.fill("#current", one_time)
        self.page.fill("#new", PASSWORD)
        self.page.fill("#confirm", PASSWORD)
        self.page.click("main button[type=submit]")
        return codes

    def item_form(self, action: str):
        return self.page.locator(f"form[action*='/{action}']").first


def axe_violations(browser, url: str, axe_source: str, cookies: list) -> list:
    context = browser.new_context(bypass_csp=True)  # only so that axe can be injected
    context.add_cookies(cookies)
    page = context.new_page()
    page.goto(url)
    assert page.url == url, f"redirected to {page.url}"  # audited as the signed-in analyst
    page.add_script_tag(content=axe_source)
    found = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',"
        " 'wcag21aa', 'wcag22aa']}}).then(r => r.violations.map(v => v.id + ': ' +"
        " v.nodes.map(n => n.target.join(' ')).join(', ')))")
    context.close()
    return found


def test_analyst_journey(browser, tmp_path, dns_server, smtp_server, artifacts,  # noqa: F811
                         axe_source):
    port, _zone = dns_server
    controller, handler = smtp_server
    instance = tmp_path / "instance"
    generate(instance / "keys")
    env = {"PORTAL_DNS_RESOLVER": f"127.0.0.1:{port}",
           "PORTAL_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    app = create_app(make_settings(instance, env=env))
    with LiveServer(app) as server:
        citizen_context = browser.new_context(java_script_enabled=False)
        citizen = PortalPages(citizen_context.new_page(), server.url)
        citizen.open("ar", "report")
        citizen.fill_report("host.example.test/oldest", email="citizen@mail.example")
        citizen.submit()
        receipt = citizen.receipt()
        citizen.open("en", "report")
        citizen.fill_report("host.example.test/newer")
        citizen.submit()
        with app.app_context():
            ext = app.extensions
            forward_once(ext["portal.transport"])
            import_once(ext["portal.transport"], ext["portal.private_keys"], ext["portal.contact_key"])
            staff = make_user("analyst", "journey@staff.example")

        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        office = BackOffice(page, server.url)
        codes = office.sign_in_first_time(staff.email, staff.password)
        assert len(codes) == 10
        assert page.url.endswith("/staff/")

        # The oldest report is first; take it.
        first_row = page.text_content("#queue tbody tr >> nth=0")
        assert "demo (ar)" in first_row  # the Arabic report was received first
        page.click("#queue tbody a >> nth=0")
        assert re.search(r"/staff/reports/\d+$", page.url)
        assert "demo (ar)" in page.text_content("dl.facts")
        assert page.text_content("#assignee").strip() == "Analyst"
        assert "hxxp://host[.]example[.]test/oldest" in page.text_content("code.defanged")
        assert page.locator("main a[href*='host.example.test']").count() == 0
        page.screenshot(path=str(artifacts / "back-office-report.png"), full_page=True)

        page.select_option("select[id^=outcome-]", "international_illegal")
        page.select_option("select[id^=category-]", "A")
        page.click("form.assess button[type=submit]")
        page.click("form[action*='/trace?'] button")
        assert "192.0.2.10" in page.text_content("dl.trace")
        page.click("details summary")
        page.fill("input[id^=tc-]", "XA")
        page.click("form[action*='/trace/correct'] button")
        page.fill("input[id^=nr-]", "abuse@host.example")
        page.click("form[action*='/notice'] button")
        assert any(m.rcpt_tos == ["abuse@host.example"] for m in handler.envelopes)
        page.click("form[action*='/removed'] button")
        assert "Confirmed removed" in page.text_content("main")
        assert page.text_content("#report-public-status").strip() == "closed"
        page.screenshot(path=str(artifacts / "back-office-done.png"), full_page=True)

        # The back office's pages pass the same accessibility rules as the public ones.
        cookies = context.cookies()
        report_path = re.search(r"/staff/reports/\d+", page.url).group(0)
        for path in ("/staff/", report_path, "/staff/account/password", "/staff/login"):
            assert axe_violations(browser, server.url + path, axe_source, cookies) == [], path

        with app.app_context():
            ship_status_updates(app.extensions["portal.transport"])
            apply_status_updates(app.extensions["portal.transport"])
        citizen.open("ar", "status")
        citizen.check_status(receipt)
        assert citizen.shown_status() == "closed"
        assert any(m.rcpt_tos == ["citizen@mail.example"] for m in handler.envelopes)
        context.close()
        citizen_context.close()
