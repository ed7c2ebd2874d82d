"""Languages: compile the catalogues, pick the request's locale, give its text direction.

The language of a public page is always the one in its URL (``/<portal>/<lang>/``); the
portal's root redirects to the best match for ``Accept-Language``. Catalogues are compiled
from ``translations/*.po`` into the instance folder at start-up, so a compiled file is
never stale.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

from babel import __version__ as babel_version
from babel import support
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask_babel import Babel, Domain, get_domain, get_locale
from wtforms.i18n import messages_path

from portal.languages import (
    CUSTOM,
    DOMAINS,
    babel_name,
    catalogue_locale,
    direction,
    load_custom_locales,
    own_name,
)
from portal.settings import Settings

babel = Babel()


def _stamp(po_bytes: bytes) -> str:
    """What a compiled catalogue was made from: the .po file's bytes and Babel's version."""
    return f"{babel_version} {hashlib.sha256(po_bytes).hexdigest()}\n"


def compile_catalogues(source: Path, target: Path) -> list[str]:
    """Compile each language's ``<domain>.po`` into ``target/<babel name>/LC_MESSAGES/``
    unless the ``.mo`` there was made from exactly these bytes (a stamp file beside it holds
    their hash), so a compiled file is never stale and each gunicorn worker's start-up does
    not compile them all again. Returns the language tags found."""
    languages: set[str] = set()
    load_custom_locales(source)
    for po_path in sorted(source.glob("*/LC_MESSAGES/*.po")):
        tag, domain = po_path.parent.parent.name, po_path.stem
        po_bytes = po_path.read_bytes()
        out_dir = target / babel_name(tag) / "LC_MESSAGES"
        mo_path, stamp_path = out_dir / f"{domain}.mo", out_dir / f"{domain}.mo.source"
        stamp = _stamp(po_bytes)
        try:
            current = mo_path.is_file() and stamp_path.read_text() == stamp
        except OSError:
            current = False
        if not current:
            catalogue = read_po(io.BytesIO(po_bytes), locale=catalogue_locale(tag))
            out_dir.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed into place: a process reading them never sees half a
            # file. The stamp comes last, so a half-done compilation is redone next time.
            tmp = out_dir / f".{domain}.mo.{os.getpid()}"
            with tmp.open("wb") as handle:
                write_mo(handle, catalogue, use_fuzzy=False)
            tmp.replace(mo_path)
            tmp = out_dir / f".{domain}.mo.source.{os.getpid()}"
            tmp.write_text(stamp)
            tmp.replace(stamp_path)
        languages.add(tag)
    return sorted(languages)


@functools.lru_cache(maxsize=256)
def text_direction(lang: str) -> str:
    return direction(lang)


@functools.lru_cache(maxsize=256)
def language_name(lang: str) -> str:
    """A language's name in that language, for the switcher ("Français", "العربية")."""
    name = own_name(lang)
    return name[:1].upper() + name[1:]


# Which audience's catalogue a request reads, by the blueprint that serves it. Anything else
# (a page outside every area, a public error page) reads the public one.
BLUEPRINT_DOMAINS = {"reporting": "public", "staff": "staff", "accounts": "staff",
                     "sponsors": "sponsors"}


def _domains() -> dict[str, Domain]:
    return current_app.extensions["portal.domains"]


@contextlib.contextmanager
def use_domain(name: str) -> Iterator[None]:
    """Read ``name``'s catalogue inside the block (a mail or a PDF made for another audience
    than the request's), then the one before."""
    before = get_domain()
    _domains()[name].as_default()
    try:
        yield
    finally:
        before.as_default()


def _pick_domain() -> None:
    _domains()[BLUEPRINT_DOMAINS.get(request.blueprint or "", "public")].as_default()


def select_locale() -> str:
    """The request's Babel locale: its language's, or for a language CLDR has no data for,
    the fallback that gives its numbers and dates (its text still comes from its own
    catalogue: see ``PortalDomain``)."""
    tag = g.get("lang") or "en"
    return babel_name(CUSTOM[tag].fallback) if tag in CUSTOM else babel_name(tag)


class PortalDomain(Domain):
    """Flask-Babel's domain, finding a catalogue by the request's language tag, which for a
    language CLDR has no data for differs from its (fallback) Babel locale."""

    def get_translations(self) -> support.NullTranslations:
        tag = g.get("lang") if has_app_context() else None
        if tag not in CUSTOM:
            return super().get_translations()
        key = (babel_name(tag), self.domain[0])
        if key not in self.cache:
            self.cache[key] = support.Translations.load(
                self.translation_directories[0], [babel_name(tag)], self.domain[0])
        return self.cache[key]


class WTFormsTranslations:
    """WTForms' own messages in the request's language, each catalogue loaded once per process.

    Flask-WTF's default loads WTForms' catalogue from disk again on every request that builds
    a form (about 0.3 ms). Forms name this in their ``Meta.get_translations``.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, support.NullTranslations] = {}

    def _catalogue(self) -> support.NullTranslations | None:
        if not has_request_context() or not current_app.config.get("WTF_I18N_ENABLED", True):
            return None
        locale = get_locale()
        key = str(locale)
        catalogue = self._loaded.get(key)
        if catalogue is None:
            catalogue = support.Translations.load(messages_path(), [locale], domain="wtforms")
            self._loaded[key] = catalogue
        return catalogue

    def gettext(self, string: str) -> str:
        catalogue = self._catalogue()
        return string if catalogue is None else catalogue.ugettext(string)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        catalogue = self._catalogue()
        if catalogue is None:
            return singular if n == 1 else plural
        return catalogue.ungettext(singular, plural, n)


wtforms_translations = WTFormsTranslations()


def configure_i18n(app: Flask, settings: Settings) -> None:
    compiled = settings.instance_path / "translations"
    compile_catalogues(settings.translations_path, compiled)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    app.config["BABEL_DOMAIN"] = "public"
    babel.init_app(app, locale_selector=select_locale)
    app.extensions["portal.domains"] = {
        name: PortalDomain(translation_directories=[str(compiled)], domain=name)
        for name in DOMAINS}
    app.before_request(_pick_domain)
    app.jinja_env.globals.update(text_direction=text_direction, language_name=language_name)
