"""Adding a language is one command, and a portal never goes live in a language that is not
translated: `portal languages add/status`, `portal themes check`, start-up and accounts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from portal.app import create_app
from portal.languages import completeness, review_status
from portal.paths import TRANSLATIONS
from portal.tenancy.themes import ThemeError
from tests.conftest import DEMO_LANGS, DEMO_LANGUAGES_LINE, copy_portal, make_settings, portal_cli


@pytest.fixture
def translations(tmp_path: Path) -> Path:
    target = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, target)
    return target


def english_and(themes: Path, slug: str, tag: str) -> None:
    """themes/demo copied as portal ``slug`` in English and ``tag`` (each text given in English
    for ``tag`` too)."""
    manifest = copy_portal(themes, slug, {
        DEMO_LANGUAGES_LINE: f'languages = ["en", "{tag}"]',
        'report.demo.example': f'report.{slug}.example'})
    lines = []
    for line in manifest.read_text().splitlines():
        lang = line.split(" = ", 1)[0].strip().strip('"')
        if lang in set(DEMO_LANGS) - {"en"}:
            continue
        lines.append(line)
        if lang == "en":
            lines.append(line.replace("en = ", f"{tag} = ", 1))
    manifest.write_text("\n".join(lines) + "\n")


def cli(instance: Path, translations: Path, themes: Path, *args: str):
    return portal_cli(instance, *args, env={"PORTAL_TRANSLATIONS_PATH": str(translations),
                                            "PORTAL_THEMES_PATH": str(themes)})


def fill(translations: Path, tag: str, domain: str, text=lambda msgid: f"[x] {msgid}"):
    """Translate every entry of a catalogue mechanically (a stand-in for a translator)."""
    path = translations / tag / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=tag)
    for message in catalogue:
        if message.id:
            if isinstance(message.id, tuple):
                message.string = tuple(text(message.id[1]) for _ in range(catalogue.num_plurals))
            else:
                message.string = text(message.id)
    with path.open("wb") as handle:
        write_po(handle, catalogue)


def test_add_creates_every_domain_and_a_draft_record_and_status_lists_it(
        instance, translations, themes_copy):
    added = cli(instance, translations, themes_copy, "languages", "add", "qqq")
    assert added.returncode != 0 and "not a language Babel/CLDR knows" in added.stderr
    added = cli(instance, translations, themes_copy, "languages", "add", "kn")
    assert added.returncode == 0, added.stderr
    for domain in ("public", "sponsors", "staff"):
        assert (translations / "kn" / "LC_MESSAGES" / f"{domain}.po").is_file()
        assert completeness(translations, "kn", domain).translated == 0
    assert review_status(translations, "kn") == "draft"
    status = cli(instance, translations, themes_copy, "languages", "status")
    assert status.returncode == 0, status.stderr
    line = next(row for row in status.stdout.splitlines() if row.startswith("kn "))
    total = completeness(translations, "kn", "public").total
    assert f"0/{total} {total} missing" in line and line.endswith("draft")
    assert any(row.startswith("fr ") and "complete" in row for row in status.stdout.splitlines())
    for bad in ("hi_IN", "Kannada", "../x"):
        assert cli(instance, translations, themes_copy, "languages", "add", bad).returncode != 0


def test_an_untranslated_catalogue_is_refused_with_the_count_and_the_command(
        instance, translations, themes_copy):
    english_and(themes_copy, "kannada", "kn")
    check = cli(instance, translations, themes_copy, "themes", "check")
    assert check.returncode == 1
    assert "'kn' has no catalogue" in check.stderr and "portal languages add kn" in check.stderr

    assert cli(instance, translations, themes_copy, "languages", "add", "kn").returncode == 0
    total = completeness(translations, "kn", "public").total
    check = cli(instance, translations, themes_copy, "themes", "check")
    assert check.returncode == 1
    assert f"({total} of {total} messages untranslated" in check.stderr
    assert "portal languages status" in check.stderr
    # A catalogue whose entries are the English copied is not a translation either.
    fill(translations, "kn", "public", text=lambda msgid: msgid)
    assert cli(instance, translations, themes_copy, "themes", "check").returncode == 1
    # Start-up refuses it the same way.
    with pytest.raises(ThemeError, match="kn"):
        create_app(make_settings(instance, themes_path=themes_copy,
                                 env={"PORTAL_TRANSLATIONS_PATH": str(translations)}))


def test_a_complete_draft_passes_with_a_warning_and_reviewed_without(
        instance, translations, themes_copy):
    english_and(themes_copy, "kannada", "kn")
    assert cli(instance, translations, themes_copy, "languages", "add", "kn").returncode == 0
    fill(translations, "kn", "public")
    check = cli(instance, translations, themes_copy, "themes", "check")
    assert check.returncode == 0, check.stderr
    assert "warning: themes/kannada: language 'kn' is a draft translation" in check.stderr
    record = translations / "kn" / "review.json"
    data = json.loads(record.read_text())
    data.update(status="reviewed", by="a native reviewer", method="read in full")
    record.write_text(json.dumps(data))
    check = cli(instance, translations, themes_copy, "themes", "check")
    assert check.returncode == 0 and "'kn' is a draft" not in check.stderr


def test_a_sponsor_needs_a_language_with_complete_sponsor_pages(instance, translations):
    assert cli(instance, translations, Path("themes").resolve(), "languages", "add",
               "kn").returncode == 0
    fill(translations, "kn", "public")
    refused = cli(instance, translations, Path("themes").resolve(), "users", "create",
                  "--email", "s@sponsor.example", "--name", "S", "--role", "sponsor", "--language", "kn",
                  "--portal", "demo")
    assert refused.returncode != 0
    assert "no complete sponsors catalogue" in refused.stderr
    fill(translations, "kn", "sponsors")
    accepted = cli(instance, translations, Path("themes").resolve(), "users", "create",
                   "--email", "s@sponsor.example", "--name", "S", "--role", "sponsor", "--language", "kn",
                   "--portal", "demo")
    assert accepted.returncode == 0, accepted.stderr
    # Staff accounts read the back office's catalogue, which has no Kannada.
    staff = cli(instance, translations, Path("themes").resolve(), "users", "create",
                "--email", "a@staff.example", "--name", "A", "--role", "analyst", "--language", "kn")
    assert staff.returncode != 0 and "no complete staff catalogue" in staff.stderr


def test_a_language_without_cldr_data_works_from_its_locale_file(instance, translations,
                                                                  themes_copy):
    """Samoan has no CLDR data: its locale.json gives its name, direction, plural rule and
    the locale of its numbers and dates; pages and plural forms then work as for any other."""
    refused = cli(instance, translations, themes_copy, "languages", "add", "sm")
    assert refused.returncode != 0 and "translations/sm/locale.json" in refused.stderr
    (translations / "sm").mkdir()
    (translations / "sm" / "locale.json").write_text(json.dumps({
        "name": "Gagana Sāmoa", "direction": "ltr", "plural_forms": "nplurals=1; plural=0;",
        "fallback": "en"}), encoding="utf-8")
    assert cli(instance, translations, themes_copy, "languages", "add", "sm").returncode == 0
    with (translations / "sm" / "LC_MESSAGES" / "public.po").open("rb") as handle:
        assert read_po(handle).num_plurals == 1
    fill(translations, "sm", "public", text=lambda msgid: f"[sm] {msgid}")
    english_and(themes_copy, "samoa", "sm")
    check = cli(instance, translations, themes_copy, "themes", "check")
    assert check.returncode == 0, check.stderr

    app = create_app(make_settings(instance, themes_path=themes_copy,
                                   env={"PORTAL_TRANSLATIONS_PATH": str(translations)}))
    client = app.test_client()
    page = client.get("/samoa/sm/").get_data(as_text=True)
    assert '<html lang="sm" dir="ltr">' in page
    assert "Gagana Sāmoa" in page and "[sm] " in page
    form = client.get("/samoa/sm/report").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    receipt = client.post("/samoa/sm/report", data={
        "csrf_token": token, "urls": "a.example.test/1\nb.example.test/2",
        "content_type": "images", "where_found": "website"}).get_data(as_text=True)
    # One plural form: the plural message's only form, with its number, in Samoan.
    assert "[sm] We received 2 web addresses." in receipt
