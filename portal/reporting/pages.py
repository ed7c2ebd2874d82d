"""Public pages rendered once per process, then completed with each request's own values.

A public page depends on its portal, its language, a few choices (which captcha, how many
addresses a receipt counts) and at most a few values that change with every request: the
CSRF token, an ALTCHA challenge, a receipt code. Rendering its Jinja templates and the form's
WTForms widgets takes milliseconds; putting three values into a finished page takes
microseconds. So each worker renders a page once per key with marker values in place of the
per-request ones, keeps it cut at the markers, and serves it by joining the parts with the
request's values, escaped by ``markupsafe.escape`` exactly as Jinja's autoescape and
WTForms' ``html_params`` escape them.

A page is kept only if it proves to be that kind of page. It is rendered twice, with two
different sets of markers, one short and one of over a thousand characters, each holding
every character HTML escaping changes (``& < > " '``); both renderings must cut, at the
escaped markers, into the very same literal parts, and no part may hold any trace of a marker
(one shown unescaped, filtered, cut, URL-quoted or escaped twice). A template that uses a
per-request value in such another way, or tests its length, fails the check, and that page is
rendered on every request as before. What the check cannot see is a template that tests a
per-request value's content (``{% if csrf_token == "..." %}``) or reads request data it was
not given (``request.args``, ``session``): the public page templates must depend only on
``g.portal``, ``g.lang`` and their context (README, "Adding a country").
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Hashable, Mapping

from markupsafe import escape

# Enough for every portal x language x variant (the receipt page has 2 x 20 variants per
# portal and language); past it, pages are rendered each time rather than kept, so no key a
# client can influence grows the cache without bound.
MAX_PAGES = 2048
_UNCACHEABLE: list[str] = []


def _markers(names: tuple[str, ...], nonce: str) -> dict[str, str]:
    return {name: f"\x02{nonce}:{name}&<>\"'\x03" for name in names}


def _cut(html: str, markers: Mapping[str, str], nonce: str) -> list[str] | None:
    """``html`` cut at the escaped markers: literal parts at even positions, the names of
    the values at odd positions; None if a marker also appears in any other form."""
    escaped = {str(escape(marker)): name for name, marker in markers.items()}
    parts, position = [], 0
    if escaped:
        pattern = re.compile("|".join(re.escape(text) for text in escaped))
        for match in pattern.finditer(html):
            parts += [html[position:match.start()], escaped[match.group()]]
            position = match.end()
    parts.append(html[position:])
    if any(nonce in part or "\x02" in part or "\x03" in part for part in parts[::2]):
        return None
    return parts


class PageCache:
    """Finished pages per key, each a list of literal parts and the names of the values."""

    def __init__(self, enabled: bool = True, max_pages: int = MAX_PAGES):
        self.enabled = enabled
        self.max_pages = max_pages
        self._pages: dict[Hashable, list[str]] = {}

    def __len__(self) -> int:
        return len(self._pages)

    def clear(self) -> None:
        self._pages.clear()

    def render(self, key: Hashable, build: Callable[[Mapping[str, str]], str],
               values: Mapping[str, str]) -> str:
        """The page for ``key`` with ``values`` in it. ``build(values)`` renders the page
        from its templates; it is called with marker values when the key is first seen, and
        with the real values when the page cannot be kept."""
        if not self.enabled:
            return build(values)
        parts = self._pages.get(key)
        if parts is None:
            if len(self._pages) >= self.max_pages:
                return build(values)
            parts = self._prepare(build, tuple(sorted(values)))
            # Two threads may both prepare the same page; both get the same parts.
            self._pages[key] = parts
        if parts is _UNCACHEABLE:
            return build(values)
        return "".join([part if index % 2 == 0 else escape(values[part])
                        for index, part in enumerate(parts)])

    @staticmethod
    def _prepare(build: Callable[[Mapping[str, str]], str],
                 names: tuple[str, ...]) -> list[str]:
        cuts = []
        # A short set and a very long one, so that a test of a value's length shows up too.
        for extra in ("", "-" * 1000):
            nonce = secrets.token_hex(8) + extra
            markers = _markers(names, nonce)
            cut = _cut(build(markers), markers, nonce)
            if cut is None:
                return _UNCACHEABLE
            cuts.append(cut)
        return cuts[0] if cuts[0] == cuts[1] else _UNCACHEABLE

    def is_kept(self, key: Hashable) -> bool:
        """Whether the page for ``key`` is served from the cache (for tests)."""
        parts = self._pages.get(key)
        return parts is not None and parts is not _UNCACHEABLE
