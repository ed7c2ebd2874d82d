"""Showing a reporter's free text to analysts without letting it steer the page.

A description can hold characters that change how the text around them is read: bidi
overrides and isolates (U+202A-U+202E, U+2066-U+2069) can reorder a line so that it reads
differently from what was typed, zero-width characters hide inside words, and C0/C1 controls
have no business in text at all. Each is shown as a visible ``[U+XXXX]`` mark instead, after
the text is escaped; tab and newline stay as they are. The zero-width joiner and non-joiner
(U+200C, U+200D) and the directional marks (U+200E, U+200F, U+061C) are ordinary parts of
Persian, Arabic and Indic writing and change no order beyond their own character, so they are
left alone.
"""

from __future__ import annotations

import unicodedata

from markupsafe import Markup, escape

KEPT = frozenset("\n\t")
# Embeddings, overrides and isolates; invisible separators and joiners that are not letters'
# parts; the line and paragraph separators.
STEERING = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
    + [chr(c) for c in range(0x2060, 0x2065)] + ["\u200b", "\ufeff", "\u2028", "\u2029"]
)


def _hidden(ch: str) -> bool:
    return ch in STEERING or (ch not in KEPT and unicodedata.category(ch) == "Cc")


def reveal_controls(text: str | None) -> Markup:
    """``text`` escaped, with every control and format character replaced by a visible mark."""
    parts: list[str] = []
    for ch in text or "":
        if _hidden(ch):
            code = f"U+{ord(ch):04X}"
            parts.append(f'<span class="control" title="{code}">[{code}]</span>')
        else:
            parts.append(str(escape(ch)))
    return Markup("".join(parts))  # noqa: S704 - every character above is escaped or a fixed mark
