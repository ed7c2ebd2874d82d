"""The public journey in real headless Chromium: JavaScript off, English and Arabic;
axe-core and the Nu HTML Checker on every public page in every shipped language; the
report page's weight; no request to any other host."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.assessment.models import Report
from portal.assessment.services import set_status, ship_status_updates
from portal.db import db
from portal.forwarding.forwarder import apply_status_updates, forward_once
from portal.forwarding.importer import import_once
from tests.browser.conftest import axe_violations, html_checker_errors
from tests.browser.pages import PortalPages
from tests.conftest import DEMO_LANGS, ON_POSTGRESQL

pytestmark = pytest.mark.browser
LANGS = list(DEMO_LANGS)
BUDGET = 30 * 1024


def central_round(app, status: str) -> None:
    """What the central side does between the citizen's two visits."""
    with app.app_context():
        transport = app.extensions["portal.transport"]
        forward_once(transport)
        import_once(transport, app.extensions["portal.private_keys"],
                    app.extensions["portal.contact_key"])
        report = db.session.scalars(select(Report).order_by(Report.id.desc())).first()
        set_status(report, status)
        db.session.commit()
        ship_status_updates(transport)
        apply_status_updates(transport)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_citizen_journey_without_javascript(browser, live_server, artifacts, lang):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740},
                                  extra_http_headers={"Accept-Language": lang})
    page = context.new_page()
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    site = PortalPages(page, live_server.url)

    page.goto(f"{live_server.url}/demo/")
    assert page.url == site.url(lang)
    assert page.get_attribute("html", "lang") == lang
    assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")
    if lang == "ar":
        # Right to left: the logo sits at the right, the text runs from the right.
        assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
        box = page.locator(".brand img").bounding_box()
        assert box["x"] > 360 / 2
    page.screenshot(path=str(artifacts / f"landing-{lang}.png"), full_page=True)

    page.click("nav.main-nav a[href$='/report']")
    assert page.url == site.url(lang, "report")
    site.fill_report("javascript:alert(1)\nsite.example.test/kept", danger=True,
                     description="typed text is kept")
    site.submit()
    assert page.input_value("#urls") == "javascript:alert(1)\nsite.example.test/kept"
    assert page.input_value("#description") == "typed text is kept"
    assert page.is_checked("#child_in_danger")
    assert page.is_visible("#urls-error")
    page.screenshot(path=str(artifacts / f"report-errors-{lang}.png"), full_page=True)

    site.fill_report("site.example.test/page-one\n<https://site.example.test/two>", danger=True)
    site.submit()
    receipt = site.receipt()
    assert len(receipt.replace(" ", "")) == 16
    urgent = page.locator("#urgent-title").bounding_box()
    assert urgent["y"] < page.locator("#receipt").bounding_box()["y"]
    page.screenshot(path=str(artifacts / f"receipt-{lang}.png"), full_page=True)

    central_round(live_server.app, "in_assessment")

    site.open(lang, "status")
    site.check_status(receipt)
    assert site.shown_status() == "in_assessment"
    site.check_status("9999 9999 9999 9999")
    assert site.shown_status() is None and page.is_visible("#status-unknown")
    assert hosts == {urlsplit(live_server.url).netloc}
    context.close()


def test_report_page_weight_within_budget(browser, live_server):
    for lang in LANGS:
        context = browser.new_context(java_script_enabled=False)  # empty cache every time
        page = context.new_page()
        responses: list = []

        def keep(response, into=responses):
            into.append(response)

        page.on("response", keep)
        page.goto(f"{live_server.url}/demo/{lang}/report")
        page.wait_for_load_state("load")
        sizes = {r.url.rsplit("/", 1)[-1]: len(r.body()) for r in responses}
        total = sum(sizes.values())
        print(f"report page {lang}: {total} bytes ({sizes})")
        assert total <= BUDGET, (lang, sizes)
        assert set(sizes) == {"report", "portal.css", "logo.svg"}
        context.close()


@pytest.fixture(scope="module")
def every_page(browser, live_server, axe_source):
    """Visit every public page and state in every language; run axe-core on each and keep
    the HTML exactly as the server sent it, for the HTML checker."""
    context = browser.new_context(bypass_csp=True)  # only so that axe can be injected
    page = context.new_page()
    site = PortalPages(page, live_server.url)
    results: dict[str, dict] = {}

    def audit(name: str, html: str) -> None:
        results[name] = {"html": html, "violations": axe_violations(page, axe_source)}

    for lang in LANGS:
        audit(f"{lang}-landing", site.open(lang))
        audit(f"{lang}-privacy", site.open(lang, "privacy"))
        audit(f"{lang}-report", site.open(lang, "report"))
        page.fill("#urls", "ftp://files.example.test/\nhttp://10.0.0.1/")
        page.fill("#contact_email", "not-an-email")
        audit(f"{lang}-report-errors", site.submit())
        site.fill_report("site.example.test/a", danger=True)
        page.fill("#contact_email", "")
        audit(f"{lang}-receipt", site.submit())
        receipt = site.receipt()
        audit(f"{lang}-status", site.open(lang, "status"))
        audit(f"{lang}-status-found", site.check_status(receipt))
        audit(f"{lang}-status-unknown", site.check_status("1234"))
        response = page.goto(f"{live_server.url}/demo/{lang}/no-such-page")
        assert response.status == 404
        audit(f"{lang}-404", response.text())
    response = page.goto(f"{live_server.url}/no-such-portal/")
    audit("unknown-portal-404", response.text())
    context.close()
    return results


# Every page in every demo language: what differs is text, script and direction, none of it
# from the database, so the SQLite pass checks it (the journey above runs on both).
same_on_every_database = pytest.mark.skipif(
    ON_POSTGRESQL, reason="page markup does not depend on the database; checked in the SQLite pass")


@same_on_every_database
def test_axe_core_finds_no_violations(every_page):
    assert len(every_page) == 9 * len(LANGS) + 1
    failures = {name: r["violations"] for name, r in every_page.items() if r["violations"]}
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)[:4000]


@same_on_every_database
def test_nu_html_checker_finds_no_errors(every_page, tmp_path):
    errors = html_checker_errors({name: r["html"] for name, r in every_page.items()}, tmp_path)
    assert not errors, "\n".join(errors[:40])
