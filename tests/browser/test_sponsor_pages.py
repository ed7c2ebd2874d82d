"""The sponsor's dashboard in real headless Chromium, JavaScript off, English and Arabic:
signed in with the second factor, figures and charts drawn on the server, zero axe-core
violations."""

from __future__ import annotations

from datetime import date

import pytest

from portal.accounts.models import User
from portal.app import create_app
from portal.db import db
from portal.forwarding.keyring import generate
from tests.browser.conftest import LiveServer
from tests.browser.test_back_office import BackOffice, axe_violations
from tests.conftest import make_settings
from tests.staff import make_user, report_into_centre

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_sponsor_dashboard(browser, tmp_path, axe_source, artifacts, lang):
    instance = tmp_path / "instance"
    generate(instance / "keys")
    app = create_app(make_settings(instance, env={"PORTAL_SPONSOR_MIN_COUNT": "2"}))
    with app.app_context():
        edge = app.test_client()
        for i in range(3):
            report_into_centre(app, edge, urls=f"host.example.test/{i}")
        staff = make_user("sponsor", f"sponsor-{lang}@ministry.example", ["demo"])
        db.session.get(User, staff.user_id).language = lang
        db.session.commit()
    month = date.today().strftime("%Y-%m")
    with LiveServer(app) as server:
        context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 900})
        page = context.new_page()
        BackOffice(page, server.url).sign_in_first_time(staff.email, staff.password)
        page.goto(f"{server.url}/sponsors/demo/?period={month}")
        assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")
        assert page.text_content("#fig-reports").strip() == "3"
        assert page.locator("svg[role=img] title").count() == 2  # outcomes, trend (no hosting yet)
        assert "example.test" not in page.content()
        page.screenshot(path=str(artifacts / f"sponsor-dashboard-{lang}.png"), full_page=True)
        url = f"{server.url}/sponsors/demo/?period={month}"
        assert axe_violations(browser, url, axe_source, context.cookies()) == []
        context.close()
