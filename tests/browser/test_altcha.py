"""The self-hosted proof-of-work check, solved by our own script in real Chromium."""

from __future__ import annotations

import pytest

from portal.app import create_app
from portal.forwarding.keyring import generate
from tests.browser.conftest import LiveServer
from tests.browser.pages import PortalPages
from tests.conftest import make_settings

pytestmark = pytest.mark.browser


def test_altcha_portal_accepts_a_report_once_the_browser_solved_the_challenge(browser, tmp_path):
    instance = tmp_path / "instance"
    generate(instance / "keys")
    app = create_app(make_settings(instance, env={"PORTAL_CAPTCHA": "altcha"}))
    with LiveServer(app) as server:
        context = browser.new_context()  # JavaScript on: the check runs in the page
        page = context.new_page()
        site = PortalPages(page, server.url)
        site.open("en", "report")
        site.fill_report("site.example.test/pow")
        page.wait_for_function("document.getElementById('altcha').value !== ''", timeout=60000)
        site.submit()
        assert len(site.receipt().replace(" ", "")) == 16
        context.close()
