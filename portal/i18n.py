"""Languages: compile the catalogues, pick the request's locale, give its text direction.

The language of a public page is always the one in its URL (``/<portal>/<lang>/``); the
portal's root redirects to the best match for ``Accept-Language``. Catalogues are compiled
from ``translations/*.po`` into the instance folder at start-up, so a compiled file is
never stale.
"""

from __future__ import annotations

import os
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g
from flask_babel import Babel

from portal.settings import Settings

babel = Babel()


def compile_catalogues(source: Path, target: Path) -> list[str]:
    languages = []
    for po_path in sorted(source.glob("*/LC_MESSAGES/messages.po")):
        lang = po_path.parent.parent.name
        with po_path.open("rb") as handle:
            catalogue = read_po(handle, locale=lang)
        out_dir = target / lang / "LC_MESSAGES"
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".messages.mo.{os.getpid()}"
        with tmp.open("wb") as handle:
            write_mo(handle, catalogue, use_fuzzy=False)
        tmp.replace(out_dir / "messages.mo")
        languages.append(lang)
    return languages


def text_direction(lang: str) -> str:
    return Locale.parse(lang).text_direction


def language_name(lang: str) -> str:
    """A language's name in that language, for the switcher ("Français", "العربية")."""
    name = Locale.parse(lang).get_display_name(lang) or lang
    return name[:1].upper() + name[1:]


def select_locale() -> str:
    return g.get("lang") or "en"


def configure_i18n(app: Flask, settings: Settings) -> None:
    compiled = settings.instance_path / "translations"
    compile_catalogues(settings.translations_path, compiled)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals.update(text_direction=text_direction, language_name=language_name)
