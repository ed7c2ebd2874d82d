"""The report payload sealed in an envelope: its fields and limits, the one schema both sides use.

The edge checks a payload before it seals it and the centre checks every payload it opens, both
with :func:`problems`, so the edge never seals what the centre would refuse and the centre never
stores what a sealed envelope says unchecked. Plain Python (no Flask, no database), so that every
area can import it. A problem names the field and what is wrong with it, never the value: the
centre logs the reasons, and a report's content never goes into a log.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

VERSION = 1
MAX_URLS = 20
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 2000
MAX_EMAIL = 254
# The keys of the report form's fixed lists (their labels are in portal/reporting/choices.py).
CONTENT_TYPES = ("unsure", "images", "videos", "text", "links", "other")
WHERE_FOUND = ("unsure", "website", "social", "messaging", "forum", "file_sharing", "search",
               "other")
# The edge's and the centre's clocks may differ a little. An envelope may wait long in an
# outbox (they are never purged), but a received time years ago is a wrong clock or a forgery.
CLOCK_SKEW = timedelta(minutes=10)
MAX_AGE = timedelta(days=5 * 366)

# C0 and C1 control characters and DEL, and lone surrogates (no UTF-8 text can hold one).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What multi-line text may hold of those: tab and line breaks (browsers send CR LF).
TEXT_CONTROLS = "\t\n\r"
LINE_BREAKS = "\n\r"

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PORTAL = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_LANG = re.compile(r"[A-Za-z0-9_-]{2,12}")
_HASH = re.compile(r"[0-9a-f]{64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_SPACE = re.compile(r"\s")
_REQUIRED = ("v", "id", "portal", "lang", "urls", "content_type", "where_found", "urgent",
             "receipt_hash", "received_at")
_OPTIONAL = ("description", "contact_email")
FIELDS = frozenset(_REQUIRED + _OPTIONAL)


class InvalidPayload(ValueError):
    """A payload that does not describe a report; the message lists its problems."""


def has_control(text: str, allowed: str = "") -> bool:
    """Whether ``text`` holds a control character other than those in ``allowed``."""
    return any(found not in allowed for found in _CONTROL.findall(text))


def _text(value: Any, limit: int, allowed: str = "") -> str | None:
    if not isinstance(value, str):
        return "not text"
    if len(value) > limit:
        return f"longer than {limit} characters"
    if has_control(value, allowed):
        return "holds a control character"
    return None


def url_problem(url: Any) -> str | None:
    """What is wrong with one address as the edge's URL rules normalise them, if anything."""
    problem = _text(url, MAX_URL_LENGTH)
    if problem or not url:
        return problem or "empty"
    if not url.startswith(("http://", "https://")):
        return "not an http or https address"
    if _SPACE.search(url):
        return "holds white space"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "not an address"
    return None if parts.hostname else "names no host"


def _urls_problem(urls: Any) -> str | None:
    if not isinstance(urls, list) or not 0 < len(urls) <= MAX_URLS:
        return f"not a list of 1 to {MAX_URLS} addresses"
    for number, url in enumerate(urls, start=1):
        problem = url_problem(url)
        if problem:
            return f"address {number} {problem}"
    return None


def _time_problem(value: Any, now: datetime) -> str | None:
    if not isinstance(value, str) or len(value) > 64:
        return "not a time"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return "not a time"
    if when.utcoffset() is None:
        return "has no time zone"
    if when > now + CLOCK_SKEW:
        return "in the future"
    if when < now - MAX_AGE:
        return "too long ago"
    return None


def _pattern(value: Any, pattern: re.Pattern[str], what: str) -> str | None:
    return None if isinstance(value, str) and pattern.fullmatch(value) else f"not {what}"


def _field_problems(payload: dict[str, Any], portals: Mapping[str, Collection[str]] | None,
                    now: datetime):
    get = payload.get
    version = get("v")
    yield "v", None if type(version) is int and version == VERSION else f"not {VERSION}"
    yield "id", _pattern(get("id"), _ID, "an envelope id")
    portal, lang = get("portal"), get("lang")
    portal_problem = _pattern(portal, _PORTAL, "a portal name")
    if portal_problem is None and portals is not None and portal not in portals:
        portal_problem = "not a portal of this service"
    yield "portal", portal_problem
    problem = _pattern(lang, _LANG, "a language code")
    if problem is None and portal_problem is None and portals is not None \
            and lang not in portals[portal]:
        problem = "not a language of this portal"
    yield "lang", problem
    yield "urls", _urls_problem(get("urls"))
    for name, keys in (("content_type", CONTENT_TYPES), ("where_found", WHERE_FOUND)):
        yield name, None if isinstance(get(name), str) and get(name) in keys else "not in the list"
    yield "description", _text(get("description", ""), MAX_DESCRIPTION, TEXT_CONTROLS)
    yield "urgent", None if type(get("urgent")) is bool else "not true or false"
    email = get("contact_email", "")
    problem = _text(email, MAX_EMAIL)
    if problem is None and email and not _EMAIL.fullmatch(email):
        problem = "not an email address"
    yield "contact_email", problem
    yield "receipt_hash", _pattern(get("receipt_hash"), _HASH, "a receipt hash")
    yield "received_at", _time_problem(get("received_at"), now)


def problems(payload: Any, *, portals: Mapping[str, Collection[str]] | None = None,
             now: datetime | None = None) -> list[str]:
    """Every problem of a payload, each as ``payload field <name>: <what is wrong>``; empty when
    it is a report. With ``portals`` (each portal's languages), the portal and the language
    must be among them; without, only their form is checked."""
    if not isinstance(payload, dict):
        return ["payload is not an object"]
    missing = [name for name in _REQUIRED if name not in payload]
    found = [f"payload field {name} missing" for name in missing]
    unknown = len(set(payload) - FIELDS)
    if unknown:
        found.append(f"payload has {unknown} unknown field(s)")
    for name, problem in _field_problems(payload, portals, now or datetime.now(UTC)):
        if problem and name not in missing:
            found.append(f"payload field {name}: {problem}")
    return found


def check(payload: Any, *, portals: Mapping[str, Collection[str]] | None = None,
          now: datetime | None = None) -> None:
    """Raise :class:`InvalidPayload` listing the payload's problems, if it has any."""
    found = problems(payload, portals=portals, now=now)
    if found:
        raise InvalidPayload("; ".join(found))
