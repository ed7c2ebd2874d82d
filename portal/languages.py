"""The languages Portal ships: one catalogue per audience (domain), how complete each is, and
who checked it.

``translations/`` holds one template per domain (``public.pot``, ``sponsors.pot``,
``staff.pot``) and one folder per language, named by its BCP 47 tag (``fr``, ``zh-Hans``),
with ``LC_MESSAGES/<domain>.po`` for each domain it has and a ``review.json``:

    {"status": "draft" | "checked" | "reviewed", "by": "...", "date": "YYYY-MM-DD",
     "method": "...", "intentional_same": {"<msgid>": "<why it equals the English>"}}

A catalogue is *complete* when every message of its domain's template has a translation that
is not fuzzy and differs from the English, unless the review record lists it as intentionally
the same. English is the source language: its domains are complete by definition.

The domains follow who reads them: ``public`` (citizens: every portal page, the error pages,
the reporter's feedback mail), ``sponsors`` (the sponsor pages, PDF, CSV and delivery mail)
and ``staff`` (the back office and sign-in).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale, UnknownLocaleError, localedata
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

DOMAINS = ("public", "sponsors", "staff")
SOURCE = "en"
STATUSES = ("draft", "checked", "reviewed")
# A BCP 47 tag as used here: a language subtag, then an optional script and region.
TAG_RE = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$")


class LanguageError(ValueError):
    """A language tag or catalogue that cannot be used."""


def babel_name(tag: str) -> str:
    """Babel's identifier for a BCP 47 tag: ``zh-Hans`` -> ``zh_Hans``."""
    return tag.replace("-", "_")


@dataclass(frozen=True)
class CustomLocale:
    """What CLDR would say of a language it has no data for, from ``translations/LANG/
    locale.json``: its own name, its direction, its plural rule, and the locale whose
    numbers and dates it uses."""

    name: str
    direction: str
    plural_forms: str
    fallback: str


# Languages without CLDR data, by tag: filled by load_custom_locales() when the app starts
# and whenever the catalogues are listed (the data is static, like CLDR's own).
CUSTOM: dict[str, CustomLocale] = {}


def load_custom_locales(translations: Path) -> None:
    for path in sorted(translations.glob("*/locale.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            custom = CustomLocale(name=str(data["name"]), direction=data.get("direction", "ltr"),
                                  plural_forms=str(data["plural_forms"]),
                                  fallback=str(data["fallback"]))
        except KeyError as exc:
            raise LanguageError(f"{path}: needs name, plural_forms and fallback") from exc
        if custom.direction not in ("ltr", "rtl"):
            raise LanguageError(f"{path}: direction must be ltr or rtl")
        CUSTOM[path.parent.name] = custom


def cldr_knows(tag: str) -> bool:
    return tag not in CUSTOM and localedata.exists(babel_name(tag))


def locale_for(tag: str) -> Locale:
    """The Babel locale of ``tag``: its own, or for a language CLDR does not know, the
    fallback its ``locale.json`` names (for numbers, dates and names of other things)."""
    custom = CUSTOM.get(tag)
    try:
        return Locale.parse(babel_name(custom.fallback if custom else tag))
    except (UnknownLocaleError, ValueError) as exc:
        raise LanguageError(f"{tag}: not a language Babel/CLDR knows; describe it in "
                            f"translations/{tag}/locale.json (name, plural_forms, "
                            "fallback)") from exc


def direction(tag: str) -> str:
    custom = CUSTOM.get(tag)
    return custom.direction if custom else locale_for(tag).text_direction


def own_name(tag: str) -> str:
    """A language's name in that language."""
    custom = CUSTOM.get(tag)
    if custom:
        return custom.name
    return Locale.parse(babel_name(tag)).get_display_name(babel_name(tag)) or tag


def catalogue_locale(tag: str) -> str | None:
    """The locale to read ``tag``'s catalogues with; None where CLDR has no data for it (the
    catalogue's own Plural-Forms header then counts)."""
    return babel_name(tag) if cldr_knows(tag) else None


@dataclass(frozen=True)
class Review:
    status: str = "draft"
    by: str = ""
    date: str = ""
    method: str = ""
    intentional_same: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> Review | None:
        path = folder / "review.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        status = data.get("status")
        if status not in STATUSES:
            raise LanguageError(f"{path}: status must be one of {', '.join(STATUSES)}")
        return cls(status=status, by=str(data.get("by", "")), date=str(data.get("date", "")),
                   method=str(data.get("method", "")),
                   intentional_same=dict(data.get("intentional_same") or {}))


@dataclass(frozen=True)
class Completeness:
    translated: int
    total: int
    problems: tuple[str, ...] = ()

    @property
    def missing(self) -> int:
        return self.total - self.translated

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.missing == 0 and not self.problems


def template_ids(translations: Path, domain: str) -> set[str]:
    with (translations / f"{domain}.pot").open("rb") as handle:
        return {_key(m.id) for m in read_po(handle) if m.id}


def _key(msgid: str | tuple[str, ...]) -> str:
    return msgid[0] if isinstance(msgid, tuple) else msgid


def read_catalogue(translations: Path, tag: str, domain: str) -> Catalog | None:
    path = translations / tag / "LC_MESSAGES" / f"{domain}.po"
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return read_po(handle, locale=catalogue_locale(tag))


def _stamp(*paths: Path) -> tuple:
    """What a result read from these files depends on: each one's size and time of change."""
    stamps = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            stamps.append(None)
        else:
            stamps.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def completeness(translations: Path, tag: str, domain: str) -> Completeness:
    """How complete ``tag``'s ``domain`` catalogue is; read again only when one of its files
    changed (every app start asks for every language's)."""
    files = (translations / f"{domain}.pot", translations / tag / "LC_MESSAGES" / f"{domain}.po",
             translations / tag / "review.json", translations / tag / "locale.json")
    return _completeness(translations, tag, domain, _stamp(*files))


@functools.lru_cache(maxsize=1024)
def _completeness(translations: Path, tag: str, domain: str, stamp: tuple) -> Completeness:
    load_custom_locales(translations)
    ids = template_ids(translations, domain)
    if tag == SOURCE:
        return Completeness(len(ids), len(ids))
    catalogue = read_catalogue(translations, tag, domain)
    if catalogue is None:
        return Completeness(0, len(ids))
    review = Review.read(translations / tag) or Review()
    translated, problems = 0, []
    if catalogue.fuzzy:
        problems.append("the catalogue header is marked fuzzy")
    for message in catalogue:
        key = _key(message.id) if message.id else ""
        if key not in ids:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(s and s.strip() for s in strings):
            continue
        if isinstance(message.id, tuple) and len(strings) != catalogue.num_plurals:
            problems.append(f"{key!r}: {len(strings)} plural forms, the language has "
                            f"{catalogue.num_plurals}")
            continue
        if strings[0] == key and key not in review.intentional_same:
            continue  # an English copy is not a translation
        translated += 1
    return Completeness(translated, len(ids), tuple(problems))


def catalogue_tags(translations: Path) -> tuple[str, ...]:
    """English plus every language folder with at least one catalogue."""
    load_custom_locales(translations)
    found = {p.name for p in translations.iterdir()
             if (p / "LC_MESSAGES").is_dir() and any((p / "LC_MESSAGES").glob("*.po"))}
    return (SOURCE, *sorted(found - {SOURCE}))


def complete_languages(translations: Path, domain: str) -> tuple[str, ...]:
    """The languages whose ``domain`` is complete (English first)."""
    return tuple(tag for tag in catalogue_tags(translations)
                 if completeness(translations, tag, domain).complete)


def review_status(translations: Path, tag: str) -> str:
    if tag == SOURCE:
        return "source"
    review = Review.read(translations / tag)
    return review.status if review else "draft"


def check_tag(tag: str) -> None:
    if not TAG_RE.match(tag):
        raise LanguageError(f"{tag!r} is not a BCP 47 tag of the form ll, ll-Ssss or ll-RR "
                            "(for example hi, zh-Hans, pt-BR)")
    locale_for(tag)


def add_language(translations: Path, tag: str, today: str) -> list[Path]:
    """Create ``tag``'s catalogue for every domain from the templates (existing ones are left
    alone) and a ``draft`` review record; return the files written."""
    from babel.messages.pofile import write_po

    load_custom_locales(translations)
    check_tag(tag)
    if tag == SOURCE:
        raise LanguageError("English is the source language; it has no catalogue")
    folder = translations / tag / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for domain in DOMAINS:
        path = folder / f"{domain}.po"
        if path.exists():
            continue
        with (translations / f"{domain}.pot").open("rb") as handle:
            template = read_po(handle)
        catalogue = Catalog(locale=catalogue_locale(tag), domain=domain, project="Portal",
                            version="1", copyright_holder="Portal developers",
                            msgid_bugs_address="", fuzzy=False)
        if tag in CUSTOM:  # no CLDR rule: the plural rule its locale.json gives
            catalogue.mime_headers = [("Language", tag),
                                      ("Plural-Forms", CUSTOM[tag].plural_forms)]
        catalogue.update(template, no_fuzzy_matching=True)
        with path.open("wb") as handle:
            write_po(handle, catalogue, no_location=True, sort_output=True, width=100)
        written.append(path)
    review = translations / tag / "review.json"
    if not review.exists():
        review.write_text(json.dumps({
            "status": "draft", "by": "", "date": today, "method": "",
            "intentional_same": {},
        }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(review)
    return written


def extract(root: Path, domain: str, out: Path) -> None:
    """Extract ``domain``'s messages from the code and templates under ``root`` into ``out``,
    as its mapping file ``translations/domains/<domain>.cfg`` says."""
    from babel.messages.frontend import CommandLineInterface

    CommandLineInterface().run([
        "pybabel", "--quiet", "extract",
        "-F", str(root / "translations" / "domains" / f"{domain}.cfg"), "-k", "_l",
        "--ignore-dirs", ".* venv node_modules", "--no-location", "--omit-header",
        "--sort-output", "-o", str(out), str(root),
    ])


def update_catalogues(root: Path) -> dict[tuple[str, str], Completeness]:
    """Re-extract every domain's template and merge it into each language's catalogue of that
    domain (entries no longer used are dropped); return each catalogue's completeness."""
    from babel.messages.pofile import write_po

    translations = root / "translations"
    load_custom_locales(translations)
    result = {}
    for domain in DOMAINS:
        pot = translations / f"{domain}.pot"
        extract(root, domain, pot)
        with pot.open("rb") as handle:
            template = read_po(handle)
        for po_path in sorted(translations.glob(f"*/LC_MESSAGES/{domain}.po")):
            tag = po_path.parent.parent.name
            with po_path.open("rb") as handle:
                catalogue = read_po(handle, locale=catalogue_locale(tag))
            catalogue.update(template, no_fuzzy_matching=True)
            catalogue.obsolete.clear()
            catalogue.project, catalogue.version = "Portal", "1"
            catalogue.copyright_holder = "Portal developers"
            catalogue.msgid_bugs_address = ""
            catalogue.fuzzy = False
            catalogue.header_comment = f"# {tag} translations of Portal ({domain}).\n#"
            with po_path.open("wb") as handle:
                write_po(handle, catalogue, no_location=True, sort_output=True, width=100)
            result[(tag, domain)] = completeness(translations, tag, domain)
    return result
