"""The sponsor PDF in one language of every script the sponsors' catalogues are written in:
every character of its text is drawn with a font that has it (no tofu), and that font is the
Noto family of the script, embedded in the PDF."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from functools import cache

import pytest
from fontTools.ttLib import TTFont

from portal.languages import complete_languages
from portal.paths import TRANSLATIONS
from tests.conftest import need
from tests.test_sponsors import THIS_MONTH, office, seed, sponsor_client, themes_two  # noqa: F401

# One language per script with a complete sponsors' catalogue, and the word that the name of
# the font drawing that script contains (None: any font, Latin and Cyrillic are everywhere).
SCRIPTS = {
    "en": ("Latin", None), "vi": ("Latin with many diacritics", None),
    "ru": ("Cyrillic", None), "ar": ("Arabic", "Arabic"), "ur": ("Arabic (Urdu)", "Arabic"),
    "hi": ("Devanagari", "Devanagari"), "bn": ("Bengali", "Bengali"),
    "si": ("Sinhala", "Sinhala"), "ta": ("Tamil", "Tamil"), "th": ("Thai", "Thai"),
    "km": ("Khmer", "Khmer"), "my": ("Myanmar", "Myanmar"), "zh-Hans": ("Han", "CJK"),
    "am": ("Ethiopic", "Ethiopic"),
}
SPONSOR_LANGUAGES = complete_languages(TRANSLATIONS, "sponsors")


def _plain(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@cache
def installed_fonts() -> dict[str, tuple[str, int]]:
    """Each installed face by its PostScript name and by family plus style, written without
    spaces or hyphens (WeasyPrint names an embedded face ``Noto-Sans-Bengali-Bold``, or the
    family alone for its regular face) ->
    (file, index in a collection), from fontconfig."""
    listing = subprocess.run(
        ["fc-list", "--format",
         "%{postscriptname}|%{family[0]}|%{family[0]}%{style[0]}|%{file}|%{index}\n"],
        capture_output=True, text=True, check=True).stdout
    fonts = {}
    for line in listing.splitlines():
        postscript, family, family_style, path, index = line.rsplit("|", 4)
        for name in (postscript, family, family_style):
            fonts.setdefault(_plain(name), (path, int(index or 0)))
    return fonts


def embedded_fonts(pdf: str) -> list[str]:
    """The PostScript names of the fonts embedded in ``pdf`` (without the subset prefix)."""
    rows = subprocess.run(["pdffonts", pdf], capture_output=True, text=True,
                          check=True).stdout.splitlines()[2:]
    return [row.split()[0].split("+", 1)[-1] for row in rows if row.strip()]


def test_every_listed_script_has_a_sponsor_language():
    assert len(SPONSOR_LANGUAGES) >= 30
    assert set(SCRIPTS) <= set(SPONSOR_LANGUAGES), set(SCRIPTS) - set(SPONSOR_LANGUAGES)


@pytest.mark.parametrize("lang", sorted(SCRIPTS))
def test_the_pdf_draws_every_character_with_its_scripts_font(office, lang, tmp_path):  # noqa: F811
    need(shutil.which("pdffonts") is not None, "poppler-utils is not installed")
    need(bool(subprocess.run(["fc-list", f":lang={lang.split('-')[0]}"], capture_output=True,
                             text=True).stdout.strip()),
         f"no font for {lang} (the Noto packages named in .ci/run)")
    seed(office)
    response = sponsor_client(office, language=lang).get(f"/sponsors/demo/{THIS_MONTH}.pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    pdf = tmp_path / f"{lang}.pdf"
    pdf.write_bytes(response.data)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    shown = {ch for ch in text if not ch.isascii() and not ch.isspace()
             and unicodedata.category(ch)[0] in "LMN"}
    _, family = SCRIPTS[lang]
    if family:
        assert len(shown) > 10, f"{lang}: the PDF holds almost no text in its script"
    names = embedded_fonts(str(pdf))
    assert names, "no font embedded"
    if family:
        assert any(family in name for name in names), (lang, names)
    cmaps = set()
    for name in names:
        path, index = installed_fonts()[_plain(name)]
        with TTFont(path, fontNumber=index, lazy=True) as font:
            cmaps |= set(font.getBestCmap())
    missing = sorted(f"U+{ord(ch):04X} {ch}" for ch in shown if ord(ch) not in cmaps)
    assert not missing, f"{lang}: drawn without a glyph: {missing[:10]}"
