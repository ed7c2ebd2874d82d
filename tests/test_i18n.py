"""Catalogues: never stale, every shipped language complete, placeholders intact."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from babel.messages.pofile import read_po

from portal.paths import ROOT, TRANSLATIONS
from portal.tenancy.themes import shipped_languages

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
SHIPPED = ("en", "ar", "es", "fr", "pt", "sw")


def ids(catalogue) -> set:
    return {m.id for m in catalogue if m.id}


@pytest.fixture(scope="module")
def fresh_template(tmp_path_factory):
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_l",
         "--ignore-dirs", ".* venv node_modules", "--no-location", "--omit-header", "-o", str(out),
         "."],
        cwd=ROOT, check=True, capture_output=True,
    )
    with out.open("rb") as handle:
        return read_po(handle)


def test_shipped_languages():
    assert shipped_languages(TRANSLATIONS) == SHIPPED


def test_template_is_not_stale(fresh_template):
    with (TRANSLATIONS / "messages.pot").open("rb") as handle:
        committed = read_po(handle)
    missing = ids(fresh_template) - ids(committed)
    obsolete = ids(committed) - ids(fresh_template)
    assert not missing and not obsolete, (
        f"run scripts/update-catalogues: new {sorted(missing)[:5]}, gone {sorted(obsolete)[:5]}"
    )
    assert len(ids(fresh_template)) > 100


@pytest.mark.parametrize("lang", [lang for lang in SHIPPED if lang != "en"])
def test_language_is_complete(lang, fresh_template):
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle, locale=lang)
    assert not catalogue.fuzzy, "the catalogue header is marked fuzzy"
    assert ids(catalogue) == ids(fresh_template)
    for message in catalogue:
        if not message.id:
            continue
        assert not message.fuzzy, f"{lang}: fuzzy: {message.id!r}"
        msgids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if isinstance(message.id, tuple):
            assert len(strings) == catalogue.num_plurals, f"{lang}: plural forms: {message.id!r}"
        expected = set(PLACEHOLDER.findall(" ".join(msgids)))
        for string in strings:
            assert string.strip(), f"{lang}: untranslated: {message.id!r}"
            assert set(PLACEHOLDER.findall(string)) == expected, f"{lang}: {message.id!r}"
