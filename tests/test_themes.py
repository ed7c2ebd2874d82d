"""Country portals: manifest validation, `portal themes check`, overrides, host names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.app import create_app
from portal.paths import THEMES, TRANSLATIONS
from portal.tenancy.themes import ThemeError, contrast_ratio, load_portals
from tests.conftest import DEMO_LANGS, DEMO_LANGUAGES_LINE, copy_portal, make_settings


def check(themes: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PORTAL_THEMES_PATH": str(themes)}
    return subprocess.run([sys.executable, "-m", "portal.cli", "themes", "check"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_shipped_themes_are_valid():
    portals = load_portals(THEMES, TRANSLATIONS)
    assert set(portals) == {"demo"}
    demo = portals["demo"]
    assert demo.languages == DEMO_LANGS and len(DEMO_LANGS) >= 10
    assert demo.hosts == ("report.demo.example",)
    result = check(THEMES)
    assert result.returncode == 0, result.stderr
    assert "themes OK: 1 portal(s) (demo)" in result.stdout


def test_every_problem_is_named_with_file_and_field(themes_copy):
    manifest = themes_copy / "demo" / "portal.toml"
    text = manifest.read_text()
    text = text.replace(DEMO_LANGUAGES_LINE,
                        DEMO_LANGUAGES_LINE.replace("]", ', "xx"]'))
    text = text.replace('brand_text = "#ffffff"', 'brand_text = "#2a4f80"')
    text = text.replace('phone = "555-0100"', 'phone = "call us"')
    text = text.replace('sw = "Tovuti ya Kuripoti ya Demolandi"\n', "")
    text = text.replace('url = "https://police.demo.example/"', 'url = "http://police.demo.example/"')
    text = 'unexpected = true\n' + text
    manifest.write_text(text)
    (themes_copy / "demo" / "templates").mkdir()
    (themes_copy / "demo" / "templates" / "lnding.html").write_text("{% extends 'x' %}")
    (themes_copy / "demo" / "templates" / "landing.html").write_text("{% block content %}{% endblock")
    result = check(themes_copy)
    assert result.returncode == 1
    expected = [
        "themes/demo/portal.toml: languages: 'xx' has no catalogue",
        "themes/demo/portal.toml: colors.brand_text: contrast with brand is below 4.5:1",
        "themes/demo/portal.toml: contacts.emergency.phone: expected a phone number",
        "themes/demo/portal.toml: name.sw: missing text for this language",
        "themes/demo/portal.toml: contacts.police.url: expected an https:// address",
        "themes/demo/portal.toml: unexpected: unknown field",
        "themes/demo/templates/lnding.html: overrides no default template",
        "themes/demo/templates/landing.html: line 1:",
    ]
    for line in expected:
        assert line in result.stderr, line
    # The app refuses to start with the same messages.
    with pytest.raises(ThemeError) as caught:
        load_portals(themes_copy, TRANSLATIONS)
    assert any("colors.brand_text" in p for p in caught.value.problems)


def test_app_refuses_to_start_on_an_invalid_theme(themes_copy, instance):
    (themes_copy / "demo" / "logo.svg").unlink()
    with pytest.raises(ThemeError, match=r"themes/demo/portal.toml: logo: file logo.svg not found"):
        create_app(make_settings(instance, themes_path=themes_copy))


def test_template_override_extends_the_default(themes_copy, instance):
    templates = themes_copy / "demo" / "templates"
    templates.mkdir()
    (templates / "landing.html").write_text(
        '{% extends "_default/landing.html" %}'
        '{% block content %}<p id="country-note">{{ _("Home") }}</p>{{ super() }}{% endblock %}'
    )
    app = create_app(make_settings(instance, themes_path=themes_copy))
    html = app.test_client().get("/demo/fr/").get_data(as_text=True)
    assert '<p id="country-note">' in html
    assert "Never download" in html or 'id="dont-title"' in html  # the default content follows


def test_second_portal_on_its_own_host(themes_copy, instance):
    manifest = copy_portal(themes_copy, "second", {
        'hosts = ["report.demo.example"]': 'hosts = ["report.second.example"]',
        DEMO_LANGUAGES_LINE: 'languages = ["fr", "ar"]',
        'default_language = "en"': 'default_language = "fr"',
    })
    text = manifest.read_text()
    for lang in set(DEMO_LANGS) - {"fr", "ar"}:
        text = "\n".join(line for line in text.splitlines()
                          if not line.startswith((f"{lang} = ", f'"{lang}" = ')))
    manifest.write_text(text)
    app = create_app(make_settings(instance, themes_path=themes_copy))
    client = app.test_client()
    on_host = client.get("/", base_url="http://report.second.example")
    assert on_host.status_code == 302 and on_host.headers["Location"].endswith("/second/fr/")
    page = client.get("/ar/report", base_url="http://report.second.example")
    assert page.status_code == 200 and 'dir="rtl"' in page.get_data(as_text=True)
    assert client.get("/demo/en/", base_url="http://report.second.example").status_code == 404
    assert client.get("/second/en/").status_code == 404
    demo_host = client.get("/en/", base_url="http://report.demo.example")
    assert demo_host.status_code == 200 and "Demoland" in demo_host.get_data(as_text=True)
    assert client.get("/healthz", base_url="http://report.second.example").status_code == 200


def test_duplicate_host_names_are_refused(themes_copy):
    import shutil

    shutil.copytree(themes_copy / "demo", themes_copy / "copy")
    with pytest.raises(ThemeError, match=r"hosts: report\.demo\.example is already used by themes/copy"):
        load_portals(themes_copy, TRANSLATIONS)


def test_contrast_ratio():
    assert round(contrast_ratio("#000000", "#ffffff"), 1) == 21.0
    assert contrast_ratio("#1d4e89", "#ffffff") > 4.5
