"""Every shipped language, on a portal that lists them all: the Nu HTML Checker on every public
page, axe-core on the landing and report pages, no horizontal scroll at 320 px, ``<html lang
dir>`` right, the report page within its budget, and the receipt's digits in reading order in
every right-to-left language.

What differs between languages is text length, script, direction and the ``lang`` value, and
none of that depends on the database: this module runs in the SQLite pass of the suite only.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from portal.app import create_app
from portal.forwarding.keyring import generate
from portal.i18n import text_direction
from portal.paths import THEMES, TRANSLATIONS
from portal.tenancy.themes import shipped_languages
from tests.browser.conftest import LiveServer, axe_violations, html_checker_errors
from tests.browser.pages import PortalPages
from tests.browser.test_public_pages import BUDGET
from tests.conftest import CSRF_RE, ON_POSTGRESQL, make_settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(ON_POSTGRESQL, reason="pages in every language do not depend on the "
                                             "database; checked in the SQLite pass"),
]
LANGUAGES = shipped_languages(TRANSLATIONS)
PAGES = ("", "report", "privacy", "status")


def every_language_theme(target: Path) -> Path:
    """themes/ with one more portal, ``every``: the demo's, listing every shipped language
    (each of its texts given in English where the demo has none)."""
    shutil.copytree(THEMES, target)
    folder = target / "every"
    shutil.copytree(THEMES / "demo", folder)
    lines: list[str] = []
    table: dict[str, str] = {}

    def end_of_table() -> None:
        if "en" in table:  # a table of texts, one per language
            lines.extend(f'"{lang}" = {table["en"]}' for lang in LANGUAGES if lang not in table)

    for line in (folder / "portal.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            end_of_table()
            table = {}
        elif " = " in line:
            key, value = line.split(" = ", 1)
            table[key.strip().strip('"')] = value
        if line.startswith("languages = "):
            line = "languages = " + json.dumps(list(LANGUAGES))
        elif line.startswith("hosts = "):
            line = 'hosts = ["report.every.example"]'
        lines.append(line)
    end_of_table()
    (folder / "portal.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def every_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("every")
    themes = every_language_theme(root / "themes")
    instance = root / "instance"
    generate(instance / "keys")
    app = create_app(make_settings(instance, themes_path=themes))
    assert app.extensions["portal.tenancy"].portals["every"].languages == LANGUAGES
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def every_page_html(every_server) -> dict[str, str]:
    """Every public page in every language, as the server sends it, through a plain client:
    the form pages empty, with errors, the receipt, the status found and unknown, the 404."""
    app = every_server.app
    pages = {}
    for lang in LANGUAGES:
        client = app.test_client()
        base = f"/every/{lang}/"
        for path in PAGES:
            response = client.get(base + path)
            assert response.status_code == 200, (lang, path)
            pages[f"{lang}-{path or 'landing'}"] = response.get_data(as_text=True)
        token = CSRF_RE.search(pages[f"{lang}-report"]).group(1)
        errors = client.post(base + "report", data={
            "csrf_token": token, "urls": "ftp://files.example.test/\nhttp://10.0.0.1/",
            "content_type": "images", "where_found": "website", "contact_email": "x"})
        assert errors.status_code == 400
        pages[f"{lang}-report-errors"] = errors.get_data(as_text=True)
        receipt = client.post(base + "report", data={
            "csrf_token": token, "urls": "site.example.test/a", "content_type": "images",
            "where_found": "website", "child_in_danger": "y"})
        assert receipt.status_code == 200, lang
        pages[f"{lang}-receipt"] = html = receipt.get_data(as_text=True)
        code = re.search(r'id="receipt"[^>]*>([^<]+)<', html).group(1)
        token = CSRF_RE.search(pages[f"{lang}-status"]).group(1)
        for name, value in (("found", code), ("unknown", "1234")):
            found = client.post(base + "status", data={"csrf_token": token, "receipt": value})
            pages[f"{lang}-status-{name}"] = found.get_data(as_text=True)
        missing = client.get(base + "no-such-page")
        assert missing.status_code == 404
        pages[f"{lang}-404"] = missing.get_data(as_text=True)
    return pages


def test_every_language_has_lang_and_dir_and_the_receipt_reads_left_to_right(every_page_html):
    for lang in LANGUAGES:
        html = every_page_html[f"{lang}-landing"]
        assert f'<html lang="{lang}" dir="{text_direction(lang)}">' in html
        # The receipt's digit groups stay in their order inside right-to-left text.
        assert re.search(r'id="receipt"[^>]*dir="ltr"|dir="ltr"[^>]*id="receipt"',
                         every_page_html[f"{lang}-receipt"]), lang
    assert sum(text_direction(lang) == "rtl" for lang in LANGUAGES) >= 6


def test_nu_html_checker_on_every_page_in_every_language(every_page_html, tmp_path):
    assert len(every_page_html) == 9 * len(LANGUAGES)
    errors = html_checker_errors(every_page_html, tmp_path)
    assert not errors, "\n".join(errors[:40])


def test_axe_width_and_weight_of_landing_and_report_in_every_language(browser, every_server,
                                                                      axe_source, artifacts):
    context = browser.new_context(bypass_csp=True, viewport={"width": 320, "height": 640})
    page = context.new_page()
    site = PortalPages(page, every_server.url, portal="every")
    violations, too_wide, sizes = {}, {}, {}
    for lang in LANGUAGES:
        for path in ("", "report"):
            responses: list = []

            def keep(response, into=responses) -> None:
                into.append(response)

            page.on("response", keep)
            site.open(lang, path)
            page.wait_for_load_state("load")
            page.remove_listener("response", keep)
            if path == "report":
                sizes[lang] = sum(len(r.body()) for r in responses)
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 320:
                too_wide[f"{lang}/{path}"] = width
                page.screenshot(path=str(artifacts / f"too-wide-{lang}-{path or 'landing'}.png"))
            if found := axe_violations(page, axe_source):
                violations[f"{lang}/{path}"] = found
    context.close()
    print(f"report page bytes: {min(sizes.values())} to {max(sizes.values())} "
          f"({min(sizes, key=sizes.get)} to {max(sizes, key=sizes.get)})")
    assert not violations, json.dumps(violations, indent=1, ensure_ascii=False)[:4000]
    assert not too_wide, too_wide
    over = {lang: size for lang, size in sizes.items() if size > BUDGET}
    assert not over, over


# One language of each script the demo portal's languages do not cover already (its every page
# is checked by test_public_pages in each of its languages: Latin, Arabic, Devanagari,
# Cyrillic and Han, both directions).
SCRIPT_SAMPLES = ("dv", "bn", "pa", "gu", "ta", "te", "si", "th", "lo", "km", "my", "ka", "hy",
                  "am")


def test_axe_on_every_page_in_one_language_of_every_script(browser, every_server, axe_source):
    assert set(SCRIPT_SAMPLES) <= set(LANGUAGES)
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    site = PortalPages(page, every_server.url, portal="every")
    violations = {}

    def audit(name: str) -> None:
        if found := axe_violations(page, axe_source):
            violations[name] = found

    for lang in SCRIPT_SAMPLES:
        for path in PAGES:
            site.open(lang, path)
            audit(f"{lang}/{path or 'landing'}")
        site.open(lang, "report")
        page.fill("#urls", "ftp://files.example.test/\nhttp://10.0.0.1/")
        site.submit()
        audit(f"{lang}/report-errors")
        site.fill_report("site.example.test/a", danger=True)
        site.submit()
        audit(f"{lang}/receipt")
        receipt = site.receipt()
        site.open(lang, "status")
        site.check_status(receipt)
        audit(f"{lang}/status-found")
        site.check_status("1234")
        audit(f"{lang}/status-unknown")
        page.goto(f"{every_server.url}/every/{lang}/no-such-page")
        audit(f"{lang}/404")
    context.close()
    assert not violations, json.dumps(violations, indent=1, ensure_ascii=False)[:4000]
