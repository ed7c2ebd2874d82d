"""The hotlines by hosting country that the team maintains in ``data/hotlines.toml``.

The file is checked whole when it is loaded: every problem is listed at once in one
``ValueError``, each naming the file and the entry's key, so a mistake is fixed in one go
instead of surfacing the day a referral is sent.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HOTLINES_PATH = Path(__file__).resolve().parent / "data" / "hotlines.toml"

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
# One address, no spaces or commas, a dot in the domain: enough to catch a typo or a pasted URL.
EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+$")
FIELDS = ("name", "url", "email", "notes")


@dataclass(frozen=True)
class Hotline:
    country: str
    name: str
    url: str
    email: str
    notes: str = ""


def _problems_of(key: str, entry: object) -> list[str]:
    if not COUNTRY_RE.match(key):
        return [f"[{key}]: the key must be an ISO 3166-1 alpha-2 code in capitals, such as DE"]
    if not isinstance(entry, dict):
        return [f"[{key}]: must be a table with name, url, email and notes"]
    problems = [f"[{key}]: unknown field {field!r}" for field in entry if field not in FIELDS]
    wrong_types = [f"[{key}]: {field} must be a string"
                   for field in FIELDS if field in entry and not isinstance(entry[field], str)]
    if wrong_types:
        return problems + wrong_types
    name = entry.get("name", "").strip()
    url = entry.get("url", "").strip()
    email = entry.get("email", "").strip()
    if not name:
        problems.append(f"[{key}]: name is required")
    if not EMAIL_RE.match(email):
        problems.append(f"[{key}]: email {email!r} does not look like an email address")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        problems.append(f"[{key}]: url {url!r} must be an https:// address")
    return problems


def load_hotlines(path: Path | str = HOTLINES_PATH) -> dict[str, Hotline]:
    """Read and check the hotlines file; ValueError lists every problem with the file and key."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: is not valid TOML: {exc}") from exc
    problems = [problem for key, entry in data.items() for problem in _problems_of(key, entry)]
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"- {p}" for p in problems))
    return {
        key: Hotline(
            country=key,
            name=entry["name"].strip(),
            url=entry["url"].strip(),
            email=entry["email"].strip(),
            notes=entry.get("notes", "").strip(),
        )
        for key, entry in data.items()
    }


def hotline_for(country: str, hotlines: dict[str, Hotline]) -> Hotline | None:
    """The hotline for a country code (any case), or None where the team has none."""
    return hotlines.get((country or "").strip().upper())
