"""Country portals: load and validate the folders under ``themes/``.

Each portal is one folder ``themes/<slug>/`` with a manifest ``portal.toml``, a logo and
optional ``templates/`` overrides. ``themes/_default/`` holds the templates and static files
every portal starts from. :func:`load_portals` returns every portal or raises
:class:`ThemeError` naming each problem with its file and field; ``portal themes check`` and
the app's start-up both call it, so a broken theme is caught before any request.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.languages import (
    SOURCE,
    LanguageError,
    catalogue_tags,
    check_tag,
    complete_languages,
    completeness,
    review_status,
)

MANIFEST = "portal.toml"
DEFAULT_THEME = "_default"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
PHONE_RE = re.compile(r"^[0-9+() -]{2,32}$")
RESERVED_SLUGS = {"healthz", "readyz", "static", "staff", "sponsors", "metrics", "api"}
CAPTCHA_CHOICES = ("inherit", "none", "hcaptcha", "altcha")
LOGO_SUFFIXES = {".svg", ".png", ".webp"}
MAX_LOGO_BYTES = 8 * 1024
KNOWN_KEYS = {
    "languages", "default_language", "hosts", "logo", "captcha", "colors", "name", "tagline",
    "contacts", "partners", "privacy", "timezone", "reports",
}


class ThemeError(Exception):
    """Every problem found in ``themes/``, one line each, prefixed with file and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid themes:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Contact:
    phone: str
    url: str = ""
    name: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Partner:
    name: dict[str, str]
    url: str = ""


@dataclass(frozen=True)
class Portal:
    """One country's portal, as its manifest describes it."""

    slug: str
    path: Path
    languages: tuple[str, ...]
    default_language: str
    name: dict[str, str]
    tagline: dict[str, str]
    hosts: tuple[str, ...]
    logo: str
    colors: dict[str, str]
    emergency: Contact
    police: Contact
    helpline: Contact
    partners: tuple[Partner, ...]
    privacy_contact: str
    retention: dict[str, str]
    captcha: str = "inherit"
    timezone: str = "UTC"
    report_emails: tuple[str, ...] = ()
    report_s3: str = ""

    def text(self, value: dict[str, str], lang: str) -> str:
        return value.get(lang) or value[self.default_language]

    def display_name(self, lang: str) -> str:
        return self.text(self.name, lang)

    @property
    def templates_path(self) -> Path:
        return self.path / "templates"


def relative_luminance(color: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def shipped_languages(translations_path: Path) -> tuple[str, ...]:
    """The languages a portal may list: English (the source) plus every language whose
    ``public`` catalogue is complete."""
    return complete_languages(translations_path, "public")


def language_problem(translations_path: Path, lang: str) -> str:
    """Why a portal cannot list ``lang``, with the command that fixes it."""
    if not (translations_path / lang / "LC_MESSAGES").is_dir():
        return (f"{lang!r} has no catalogue: create it with 'portal languages add {lang}', "
                "then translate it")
    state = completeness(translations_path, lang, "public")
    detail = f"; {state.problems[0]}" if state.problems else ""
    return (f"{lang!r}: the public catalogue is incomplete ({state.missing} of {state.total} "
            f"messages untranslated{detail}): translate translations/{lang}/LC_MESSAGES/"
            "public.po ('portal languages status' lists what is missing)")


def draft_warnings(portals: dict[str, Portal], translations_path: Path) -> list[str]:
    """One line per portal language whose translation is only a draft (allowed, but a country
    should know that no native speaker has reviewed it yet)."""
    return [
        f"themes/{slug}: language {lang!r} is a draft translation (translations/{lang}/"
        "review.json): have a native speaker review it before the portal goes live"
        for slug, portal in sorted(portals.items()) for lang in portal.languages
        if lang != SOURCE and review_status(translations_path, lang) == "draft"
    ]


class _Checker:
    def __init__(self, where: str, problems: list[str]):
        self.where = where
        self.problems = problems
        self.declared: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}: {key}: {message}")

    def text(self, data: Any, key: str, languages: tuple[str, ...], max_len: int) -> dict[str, str]:
        if not isinstance(data, dict):
            self.problem(key, "expected a table with one text per language, e.g. en = \"...\"")
            return {}
        result: dict[str, str] = {}
        for lang in languages:
            value = data.get(lang)
            if not isinstance(value, str) or not value.strip():
                self.problem(f"{key}.{lang}", "missing text for this language")
            elif len(value) > max_len:
                self.problem(f"{key}.{lang}", f"longer than {max_len} characters")
            else:
                result[lang] = value.strip()
        for extra in sorted(set(data) - set(languages) - set(self.declared)):
            self.problem(f"{key}.{extra}", "language not listed in 'languages'")
        return result

    def url(self, value: Any, key: str) -> str:
        if value in (None, ""):
            return ""
        if not isinstance(value, str) or not re.match(r"^https://[^\s\"'<>]{3,500}$", value):
            self.problem(key, "expected an https:// address")
            return ""
        return value

    def contact(self, data: Any, key: str, languages: tuple[str, ...], named: bool) -> Contact:
        if not isinstance(data, dict):
            self.problem(key, "missing table")
            return Contact(phone="")
        phone = data.get("phone")
        if not isinstance(phone, str) or not PHONE_RE.match(phone):
            self.problem(f"{key}.phone", "expected a phone number (digits, spaces, + - ( ))")
            phone = ""
        name = self.text(data.get("name"), f"{key}.name", languages, 120) if named else {}
        return Contact(phone=phone, url=self.url(data.get("url"), f"{key}.url"), name=name)


def _load_manifest(folder: Path, shipped: tuple[str, ...], problems: list[str],
                   translations_path: Path) -> Portal | None:
    manifest = folder / MANIFEST
    where = f"themes/{folder.name}/{MANIFEST}"
    check = _Checker(where, problems)
    if not SLUG_RE.match(folder.name) or folder.name in RESERVED_SLUGS:
        problems.append(
            f"themes/{folder.name}: folder name must be 2-40 lowercase letters, digits or '-', "
            f"and not one of {', '.join(sorted(RESERVED_SLUGS))}"
        )
        return None
    if not manifest.is_file():
        problems.append(f"{where}: file missing")
        return None
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{where}: not valid TOML: {exc}")
        return None
    before = len(problems)
    for unknown in sorted(set(data) - KNOWN_KEYS):
        check.problem(unknown, "unknown field")

    languages = data.get("languages")
    if (
        not isinstance(languages, list)
        or not languages
        or not all(isinstance(x, str) for x in languages)
    ):
        check.problem("languages", "expected a list of language codes, e.g. [\"en\", \"fr\"]")
        languages = []
    for lang in languages:
        if lang not in shipped:
            check.problem("languages", language_problem(translations_path, lang))
    if len(set(languages)) != len(languages):
        check.problem("languages", "a language is listed twice")
    langs = tuple(lang for lang in dict.fromkeys(languages) if lang in shipped)
    check.declared = list(languages)
    default = data.get("default_language")
    if default not in langs:
        check.problem("default_language", "must be one of the portal's languages")

    hosts = data.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        check.problem("hosts", "expected a list of host names")
        hosts = []
    for host in hosts:
        if not HOST_RE.match(host):
            check.problem("hosts", f"{host!r} is not a lower-case host name")

    logo = data.get("logo")
    if not isinstance(logo, str) or "/" in logo or Path(logo).suffix not in LOGO_SUFFIXES:
        check.problem("logo", f"expected a file name in the folder ending in {sorted(LOGO_SUFFIXES)}")
        logo = ""
    elif not (folder / logo).is_file():
        check.problem("logo", f"file {logo} not found in themes/{folder.name}/")
    elif (folder / logo).stat().st_size > MAX_LOGO_BYTES:
        check.problem("logo", f"larger than {MAX_LOGO_BYTES} bytes; the report page has a budget")

    colors = data.get("colors")
    parsed_colors: dict[str, str] = {}
    if not isinstance(colors, dict):
        check.problem("colors", "missing table with brand, brand_text and accent")
    else:
        for key in ("brand", "brand_text", "accent"):
            value = colors.get(key)
            if not isinstance(value, str) or not COLOR_RE.match(value):
                check.problem(f"colors.{key}", "expected a colour like \"#1a2b3c\"")
            else:
                parsed_colors[key] = value.lower()
        if len(parsed_colors) == 3:
            if contrast_ratio(parsed_colors["brand"], parsed_colors["brand_text"]) < 4.5:
                check.problem("colors.brand_text", "contrast with brand is below 4.5:1 (WCAG AA)")
            if contrast_ratio(parsed_colors["accent"], "#ffffff") < 4.5:
                check.problem("colors.accent", "contrast with white is below 4.5:1 (WCAG AA)")

    captcha = data.get("captcha", "inherit")
    if captcha not in CAPTCHA_CHOICES:
        check.problem("captcha", f"expected one of {', '.join(CAPTCHA_CHOICES)}")
        captcha = "inherit"

    contacts = data.get("contacts") if isinstance(data.get("contacts"), dict) else {}
    if not contacts:
        check.problem("contacts", "missing table with emergency, police and helpline")
    emergency = check.contact(contacts.get("emergency"), "contacts.emergency", langs, False)
    police = check.contact(contacts.get("police"), "contacts.police", langs, False)
    helpline = check.contact(contacts.get("helpline"), "contacts.helpline", langs, True)

    partners = []
    raw_partners = data.get("partners", [])
    if not isinstance(raw_partners, list):
        check.problem("partners", "expected a list of [[partners]] tables")
        raw_partners = []
    for i, partner in enumerate(raw_partners):
        if not isinstance(partner, dict):
            check.problem(f"partners[{i}]", "expected a table")
            continue
        partners.append(
            Partner(
                name=check.text(partner.get("name"), f"partners[{i}].name", langs, 120),
                url=check.url(partner.get("url"), f"partners[{i}].url"),
            )
        )

    privacy = data.get("privacy") if isinstance(data.get("privacy"), dict) else {}
    contact = privacy.get("contact")
    if not isinstance(contact, str) or not re.match(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", contact):
        check.problem("privacy.contact", "expected an email address")
        contact = ""
    retention = check.text(privacy.get("retention"), "privacy.retention", langs, 1000)

    timezone = data.get("timezone", "UTC")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        check.problem("timezone", f"unknown time zone {timezone!r} (e.g. \"Africa/Nairobi\")")
        timezone = "UTC"
    reports = data.get("reports", {})
    if not isinstance(reports, dict):
        check.problem("reports", "expected a table with emails and s3")
        reports = {}
    report_emails = reports.get("emails", [])
    if not isinstance(report_emails, list) or not all(
        isinstance(e, str) and re.match(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", e) for e in report_emails
    ):
        check.problem("reports.emails", "expected a list of email addresses")
        report_emails = []
    report_s3 = reports.get("s3", "")
    if report_s3 and not (isinstance(report_s3, str)
                          and re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[\w./-]*)?$", report_s3)):
        check.problem("reports.s3", "expected s3://bucket/prefix/")
        report_s3 = ""

    name = check.text(data.get("name"), "name", langs, 80)
    tagline = check.text(data.get("tagline"), "tagline", langs, 160)

    if len(problems) > before:
        return None
    return Portal(
        slug=folder.name,
        path=folder,
        languages=langs,
        default_language=default,
        name=name,
        tagline=tagline,
        hosts=tuple(hosts),
        logo=logo,
        colors=parsed_colors,
        emergency=emergency,
        police=police,
        helpline=helpline,
        partners=tuple(partners),
        privacy_contact=contact,
        retention=retention,
        captcha=captcha,
        timezone=str(timezone),
        report_emails=tuple(report_emails),
        report_s3=report_s3,
    )


def default_templates(themes_path: Path) -> set[str]:
    root = themes_path / DEFAULT_THEME / "templates"
    return {p.relative_to(root).as_posix() for p in root.rglob("*.html")}


def load_portals(themes_path: Path, translations_path: Path) -> dict[str, Portal]:
    """Load every portal under ``themes_path``; raise :class:`ThemeError` on any problem."""
    problems: list[str] = []
    shipped = shipped_languages(translations_path)
    for lang in catalogue_tags(translations_path):
        try:
            check_tag(lang)
        except LanguageError as exc:
            problems.append(f"translations/{lang}: {exc}")
    default_dir = themes_path / DEFAULT_THEME
    if not (default_dir / "templates").is_dir():
        problems.append(f"themes/{DEFAULT_THEME}/templates: folder missing")
        raise ThemeError(problems)
    known_templates = default_templates(themes_path)

    portals: dict[str, Portal] = {}
    hosts: dict[str, str] = {}
    for folder in sorted(p for p in themes_path.iterdir() if p.is_dir()):
        if folder.name == DEFAULT_THEME or folder.name.startswith("."):
            continue
        portal = _load_manifest(folder, shipped, problems, translations_path)
        overrides = folder / "templates"
        if overrides.is_dir():
            for template in sorted(overrides.rglob("*.html")):
                name = template.relative_to(overrides).as_posix()
                if name not in known_templates:
                    problems.append(
                        f"themes/{folder.name}/templates/{name}: overrides no default template "
                        f"(known: {', '.join(sorted(known_templates))})"
                    )
        if portal is None:
            continue
        for host in portal.hosts:
            if host in hosts:
                problems.append(
                    f"themes/{folder.name}/{MANIFEST}: hosts: {host} is already used by "
                    f"themes/{hosts[host]}"
                )
            hosts[host] = portal.slug
        portals[portal.slug] = portal
    if not portals and not problems:
        problems.append("themes: no portal folder found (each needs a portal.toml)")
    if problems:
        raise ThemeError(problems)
    return portals
