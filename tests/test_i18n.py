"""Catalogues per domain: never stale, every shipped language complete and reviewed on record,
placeholders, markup and plural forms intact, and the safety text present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from portal.languages import (
    DOMAINS,
    STATUSES,
    babel_name,
    catalogue_tags,
    complete_languages,
    completeness,
    extract,
    read_catalogue,
    template_ids,
)
from portal.paths import ROOT, TRANSLATIONS

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")
LANGUAGES = [tag for tag in catalogue_tags(TRANSLATIONS) if tag != "en"]
# The back office must be complete in at least these (issue 15).
STAFF_AT_LEAST = {"en", "fr", "es", "ar"}
# What a citizen must never miss: present and translated in every public catalogue.
SAFETY = (
    "Never download, save or take a screenshot of the material, not even as evidence. Doing so "
    "may be a crime.",
    "Call the emergency services now. Do not wait for an answer to your report.",
    "A child is in immediate danger",
)


@pytest.fixture(scope="module")
def fresh_templates(tmp_path_factory) -> dict[str, set[str]]:
    out = tmp_path_factory.mktemp("pot")
    ids = {}
    for domain in DOMAINS:
        extract(ROOT, domain, out / f"{domain}.pot")
        with (out / f"{domain}.pot").open("rb") as handle:
            ids[domain] = {m.id if isinstance(m.id, str) else m.id[0]
                           for m in read_po(handle) if m.id}
    return ids


@pytest.mark.parametrize("domain", DOMAINS)
def test_template_is_not_stale(domain, fresh_templates):
    committed = template_ids(TRANSLATIONS, domain)
    missing = fresh_templates[domain] - committed
    obsolete = committed - fresh_templates[domain]
    assert not missing and not obsolete, (
        f"run 'portal languages update': new {sorted(missing)[:5]}, gone {sorted(obsolete)[:5]}")
    assert len(committed) > 50


def test_no_public_text_is_left_out_of_the_public_domain(fresh_templates):
    """Every message of a citizen's page is in the public template (the domains are cut by
    paths: a theme template or a reporting module outside them would be silently English)."""
    themes = ROOT / "themes"
    used = set()
    for template in themes.rglob("*.html"):
        used |= set(re.findall(r'_\("([^"]+)"', template.read_text(encoding="utf-8")))
    assert used and used <= fresh_templates["public"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_public_catalogue_is_complete(lang):
    state = completeness(TRANSLATIONS, lang, "public")
    assert state.complete, f"{lang}: {state.missing} of {state.total} missing {state.problems}"


def test_required_staff_and_sponsor_languages():
    assert set(complete_languages(TRANSLATIONS, "staff")) >= STAFF_AT_LEAST
    assert len(complete_languages(TRANSLATIONS, "sponsors")) >= 6


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogues_keep_placeholders_markup_and_plural_forms(lang):
    for domain in DOMAINS:
        catalogue = read_catalogue(TRANSLATIONS, lang, domain)
        if catalogue is None:
            continue
        assert catalogue.locale_identifier == babel_name(lang)
        for message in catalogue:
            if not message.id or message.fuzzy:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if not any(strings):
                continue  # untranslated: counted by completeness, allowed outside public
            if isinstance(message.id, tuple):
                assert len(strings) == catalogue.num_plurals, f"{lang} {domain}: {ids[0]!r}"
            want = set(PLACEHOLDER.findall(" ".join(ids)))
            for string in strings:
                assert set(PLACEHOLDER.findall(string)) == want, f"{lang} {domain}: {ids[0]!r}"
                assert sorted(TAG.findall(string)) == sorted(TAG.findall(ids[0])), \
                    f"{lang} {domain}: markup differs: {ids[0]!r}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_has_a_review_record(lang):
    record = json.loads((TRANSLATIONS / lang / "review.json").read_text(encoding="utf-8"))
    assert record["status"] in STATUSES
    assert record["by"].strip() and record["method"].strip()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"])
    catalogues = [c for d in DOMAINS if (c := read_catalogue(TRANSLATIONS, lang, d))]
    for msgid in record.get("intentional_same") or {}:
        assert any(msgid in c for c in catalogues), f"{lang}: unknown message {msgid!r}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_safety_text_is_translated(lang):
    catalogue = read_catalogue(TRANSLATIONS, lang, "public")
    for msgid in SAFETY:
        message = catalogue.get(msgid)
        assert message is not None and message.string and message.string != msgid, (lang, msgid)


def test_pofilter_finds_no_broken_variables_tags_or_escapes(tmp_path: Path):
    """translate-toolkit's checks over every catalogue in one run: placeholders, printf, XML
    tags, escapes and line breaks. It writes a file for each catalogue with a failing entry."""
    pofilter = shutil.which("pofilter", path=str(Path(sys.executable).parent))
    assert pofilter, "translate-toolkit is a test dependency"
    out = tmp_path / "failing"
    subprocess.run([pofilter, "--progress=none", "-t", "variables", "-t", "printf",
                    "-t", "xmltags", "-t", "escapes", "-t", "newlines", "--nofuzzy",
                    "-i", str(TRANSLATIONS), "-o", str(out)], check=True, capture_output=True)
    failing = sorted(p.relative_to(out) for p in out.rglob("*.po")) if out.exists() else []
    assert not failing, failing[:5]


@pytest.mark.parametrize("lang", ["hi", "ur", "sw"])
def test_no_wtforms_message_reaches_a_citizen(client, lang):
    """WTForms ships no catalogue for these languages (nor for most of ours): every error a
    citizen can get on the public forms is one of our own public messages, translated."""
    catalogue = read_catalogue(TRANSLATIONS, lang, "public")
    ours = [prefix for m in catalogue if m.id
            for text in (m.string if isinstance(m.string, tuple) else (m.string,))
            if len(prefix := text.split("%(")[0]) >= 3]
    bodies = [
        ("report", {}),  # no token, nothing at all
        ("report", {"csrf_token": "forged", "urls": "", "content_type": "nope",
                    "where_found": "nope", "contact_email": "x", "description": "x" * 3000,
                    "child_in_danger": "maybe"}),
        ("status", {"csrf_token": "forged", "receipt": ""}),
    ]
    for path, data in bodies:
        html = client.post(f"/demo/{lang}/{path}", data=data).get_data(as_text=True)
        shown = [re.sub(r"<[^>]+>", "", item).strip()
                 for block in re.findall(r'<ul class="error" id="[^"]+">(.*?)</ul>', html, re.S)
                 for item in re.findall(r"<li>(.*?)</li>", block, re.S)]
        assert shown, (lang, path)
        for message in shown:
            text = message.replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
            assert any(text.startswith(prefix) for prefix in ours), (lang, path, message)
