"""Inline SVG charts for sponsors' progress reports: no JavaScript, no style attributes.

Every chart is a pure function of its arguments (same input, same bytes). Text is escaped;
callers render an HTML table with the same figures, so the SVG is a labelled image.

Right-to-left: the layout is mirrored with explicit coordinates and physical text anchors
(`end` on the left side becomes `start` on the right side). Browsers read `text-anchor` relative
to the `direction` property while WeasyPrint reads it physically, so a `direction="rtl"` attribute
would make the two disagree. Text runs are instead wrapped in the Unicode isolates RLI…PDI,
which gives Arabic the same bidi ordering and shaping as an RTL paragraph in both renderers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from markupsafe import Markup

FONT = "Noto Sans, DejaVu Sans, sans-serif"
INK = "#1b1b1b"
GRID = "#8a8a8a"  # 3.4:1 against white: gridlines and axis are non-text graphics
PALETTE = ("#1d4e89", "#b45f06", "#2e7d32")  # each at least 4.5:1 against white
ROW, BAR, STUB = 28, 18, 8
_ZERO_EXTRAS = set(" %٪.,٫٬\u00a0\u202f")


def _n(x: float) -> str:
    """A coordinate, rounded so that output stays stable and short."""
    return f"{round(x, 2):g}"


def _t(text: str, rtl: bool) -> str:
    """Isolate a text run as right-to-left (see the module docstring)."""
    return f"\u2067{text}\u2069" if rtl else text


def _text(x: float, y: float, anchor: str, text: str, rtl: bool, size: int = 12) -> Markup:
    return Markup('<text x="{}" y="{}" text-anchor="{}" font-size="{}" fill="{}">{}</text>').format(
        _n(x), _n(y), anchor, size, INK, _t(text, rtl)
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str = "none") -> Markup:
    return Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="{}"/>').format(
        _n(x), _n(y), _n(max(w, 0.0)), _n(max(h, 0.0)), fill, stroke
    )


def _svg(
    chart_id: str, title: str, description: str, width: int, height: int, body: Iterable[Markup]
) -> Markup:
    """Wrap chart parts in an accessible root: role img, labelled by its title and desc."""
    head = Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{0}-title {0}-desc"'
        ' viewBox="0 0 {1} {2}" width="{1}" height="{2}" font-family="{3}">'
        '<title id="{0}-title">{4}</title><desc id="{0}-desc">{5}</desc>'
    ).format(chart_id, width, height, FONT, title, description)
    return head + Markup("").join(body) + Markup("</svg>")


def _is_zero_numeral(text: str) -> bool:
    """Whether a display text spells zero in any script ("0", "0.0", "٠", "0 %")."""
    digits = [c for c in text if c not in _ZERO_EXTRAS]
    return bool(digits) and all(unicodedata.digit(c, None) == 0 for c in digits)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    rows: list[tuple[str, int, str]],
    rtl: bool = False,
    width: int = 560,
) -> Markup:
    """Horizontal bars, one per (label, value, display_text) row, lengths proportional to value/max.

    A row whose value is 0 but whose display text is not a zero (a suppressed figure such as
    "fewer than 5") gets a short hatched stub instead of a bar; its text is always written.
    """
    label_w = round(width * 0.46)  # outcome names are long
    value_w = 104
    area = max(width - label_w - value_w, 1)
    top = max((value for _, value, _ in rows), default=0)
    height = 8 + ROW * len(rows)
    base = width - label_w if rtl else label_w  # where every bar starts
    sign = -1 if rtl else 1  # which way bars grow
    hatch = f"{chart_id}-hatch"
    parts = [
        Markup(
            '<defs><pattern id="{}" width="6" height="6" patternUnits="userSpaceOnUse">'
            '<rect width="6" height="6" fill="#ffffff"/>'
            '<path d="M0,6 L6,0 M-1,1 L1,-1 M5,7 L7,5" stroke="{}" stroke-width="1.5"/></pattern></defs>'
        ).format(hatch, PALETTE[0])
    ]
    for index, (label, value, display) in enumerate(rows):
        y = 4 + index * ROW + (ROW - BAR) / 2
        baseline = y + BAR / 2 + 4.5
        length = area * value / top if top > 0 and value > 0 else 0.0
        suppressed = value <= 0 and not _is_zero_numeral(display.strip())
        row = [_text(base - sign * 8, baseline, "start" if rtl else "end", label, rtl, 13)]
        x = base - length if rtl else base
        if suppressed:
            x, length = (base - STUB if rtl else base), STUB
            row.append(_rect(x, y, STUB, BAR, f"url(#{hatch})", PALETTE[0]))
        elif length > 0:
            row.append(_rect(x, y, length, BAR, PALETTE[0]))
        row.append(_text(base + sign * (length + 6), baseline, "end" if rtl else "start", display, rtl))
        parts.append(Markup('<g aria-hidden="true">{}</g>').format(Markup("").join(row)))
    return _svg(chart_id, title, description, width, height, parts)


def _ticks(top: int) -> list[int]:
    """Three to five round gridline values from 0 covering `top` (steps 1, 2, 5 × 10ⁿ)."""
    step = 1
    while -(-top // step) > 4:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return [step * i for i in range(max(2, -(-top // step)) + 1)]


def trend_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    months: list[str],
    series: list[tuple[str, list[int]]],
    rtl: bool = False,
    width: int = 560,
    height: int = 220,
) -> Markup:
    """Grouped vertical bars per month (one bar per series), y gridlines, month labels, a legend.

    With `rtl` the first month is at the right, the y axis labels on the right side.
    """
    axis_w, legend_h, months_h = 44, 26, 22
    plot_top, plot_bottom = legend_h + 8, height - months_h
    left = 8 if rtl else axis_w
    right = width - axis_w if rtl else width - 8
    plot_w, plot_h = right - left, plot_bottom - plot_top
    ticks = _ticks(max((v for _, values in series for v in values), default=0))
    parts: list[Markup] = []
    column = (right - left) / max(len(series), 1)
    for index, (name, _) in enumerate(series):  # legend: swatch then name, in reading order
        colour = PALETTE[index % len(PALETTE)]
        if rtl:
            start = right - index * column
            parts.append(_rect(start - 12, 6, 12, 12, colour))
            parts.append(_text(start - 18, 16.5, "end", name, rtl))
        else:
            start = left + index * column
            parts.append(_rect(start, 6, 12, 12, colour))
            parts.append(_text(start + 18, 16.5, "start", name, rtl))
    for tick in ticks:
        y = plot_bottom - plot_h * tick / ticks[-1]
        parts.append(
            Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"/>').format(
                _n(left), _n(y), _n(right), _n(y), INK if tick == 0 else GRID, 1 if tick == 0 else 0.5
            )
        )
        label_x = right + 6 if rtl else left - 6
        parts.append(_text(label_x, y + 4, "start" if rtl else "end", str(tick), rtl))
    group_w = plot_w / max(len(months), 1)
    bar_w = min(18.0, group_w * 0.8 / max(len(series), 1))
    for m, month in enumerate(months):
        slot = len(months) - 1 - m if rtl else m
        centre = left + group_w * (slot + 0.5)
        bars = []
        for s, (_, values) in enumerate(series):
            value = values[m] if m < len(values) else 0
            bar_h = plot_h * max(value, 0) / ticks[-1]
            position = len(series) - 1 - s if rtl else s
            x = centre - bar_w * len(series) / 2 + bar_w * position
            bars.append(_rect(x, plot_bottom - bar_h, bar_w - 1, bar_h, PALETTE[s % len(PALETTE)]))
        bars.append(_text(centre, plot_bottom + 16, "middle", month, rtl))
        parts.append(Markup('<g aria-hidden="true">{}</g>').format(Markup("").join(bars)))
    return _svg(chart_id, title, description, width, height, parts)
