"""Normalising and checking the addresses a citizen reports.

Each line becomes one absolute http(s) URL: surrounding whitespace, quotes and brackets are
stripped, a missing scheme becomes ``http://``, the host is lower-cased and converted to
punycode (IDNA 2008 with UTS #46 mapping). An address that cannot be a public web address is
rejected with a reason code that the form turns into a localized message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

from portal import public_hosts
from portal.payload import MAX_URL_LENGTH, has_control

WRAPPERS = {"<": ">", '"': '"', "'": "'", "(": ")", "[": "]", "«": "»", "“": "”", "‘": "’"}
SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):(?!\d)")
LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A host name that IDNA leaves as it is: lower-case letters, digits and inner hyphens, no
# label with hyphens in its 3rd and 4th places ("xn--" and the like), at most 253 characters.
PLAIN_HOST_RE = re.compile(r"^(?=.{1,253}$)(?:(?!..--)(?!-)[a-z0-9-]{1,63}(?<!-)\.)*"
                           r"(?!..--)(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class UrlProblem:
    line: int
    text: str
    reason: str  # one of: scheme, no_host, private, too_long, invalid, control


def _strip_wrapping(text: str) -> str:
    text = text.strip()
    changed = True
    while changed and len(text) >= 2:
        # A sentence's full stop or comma pasted along with the address, then brackets.
        stripped = text.rstrip(".,;")
        changed = stripped != text
        text = stripped
        if len(text) >= 2 and WRAPPERS.get(text[0]) == text[-1]:
            text, changed = text[1:-1].strip(), True
    return text


def _blocked_ip(host: str) -> bool | None:
    """True for a non-public address literal, False for a public one, None if not an IP."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return not public_hosts.is_public_address(address)


def normalise(text: str) -> tuple[str | None, str | None]:
    """Return ``(url, None)`` or ``(None, reason)`` for one line the citizen typed."""
    if len(text) > MAX_URL_LENGTH:
        return None, "too_long"
    if has_control(text):  # NUL and the like: urlsplit would keep them in the path
        return None, "control"
    text = _strip_wrapping(text)
    if not text:
        return None, "no_host"
    match = SCHEME_RE.match(text)
    if match:
        if match.group(1).lower() not in ("http", "https"):
            return None, "scheme"
    elif text.startswith("//"):
        text = "http:" + text
    else:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None, "invalid"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None, "no_host"
    blocked = _blocked_ip(host)
    if blocked:
        return None, "private"
    if blocked is None:
        # Most reported hosts are plain ASCII, which IDNA would return unchanged after checks
        # that the pattern already made (tests/test_urls.py compares the two).
        if not PLAIN_HOST_RE.match(host):
            try:
                host = idna.encode(host, uts46=True).decode("ascii").lower()
            except idna.IDNAError:
                return None, "invalid"
        # After IDNA, so that another spelling of such a name (full-width letters) is refused too.
        if public_hosts.internal_name(host):
            return None, "private"
        labels = host.split(".")
        if public_hosts.single_label(host) or not all(LABEL_RE.match(label) for label in labels):
            return None, "no_host" if len(labels) < 2 else "invalid"
        if labels[-1].isdigit():
            return None, "invalid"
    elif ":" in host:
        host = f"[{ipaddress.ip_address(host).compressed}]"
    netloc = host if port is None else f"{host}:{port}"
    url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment))
    url = url.replace(" ", "%20")
    if len(url) > MAX_URL_LENGTH:
        return None, "too_long"
    return url, None


def split_lines(raw: str) -> list[str]:
    """One address per line; spaces inside a line also separate addresses."""
    return [piece for line in raw.splitlines() for piece in line.split() if piece.strip()]


def parse_urls(raw: str) -> tuple[list[str], list[UrlProblem]]:
    """Normalise every address; duplicates (after normalising) are kept once, in order."""
    urls: list[str] = []
    problems: list[UrlProblem] = []
    for number, piece in enumerate(split_lines(raw), start=1):
        url, reason = normalise(piece)
        if reason:
            problems.append(UrlProblem(line=number, text=piece[:80], reason=reason))
        elif url not in urls:
            urls.append(url)
    return urls, problems
