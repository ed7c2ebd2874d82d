"""The sponsors' inline SVG charts: well-formed, labelled, proportional, escaped, mirrored for RTL."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from portal.sponsors.charts import PALETTE, bar_chart, trend_chart

NS = "{http://www.w3.org/2000/svg}"
RLI, PDI = "\u2067", "\u2069"
ROWS = [("North", 10, "10"), ("South", 5, "5"), ("East", 0, "fewer than 5"), ("West", 0, "0")]
MONTHS = ["Oct", "Nov", "Dec"]
SERIES = [("Received", [12, 30, 7]), ("Forwarded", [5, 20, 0]), ("Removed", [0, 9, 1])]


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    # The markup is our own output under test, not untrusted input.
    return ET.fromstring(str(markup))  # noqa: S314


def bars(root: ET.Element) -> list[ET.Element]:
    """Rects of the chart body (not the hatch pattern's tile), in document order."""
    return [r for g in root.iter(f"{NS}g") for r in g.iter(f"{NS}rect")]


def texts(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{NS}text"))


def plain(element: ET.Element) -> str:
    return (element.text or "").strip(RLI + PDI)


def bar(**kwargs: object) -> Markup:
    args: dict = {"chart_id": "cases", "title": "Reports by region", "description": "Bars.", "rows": ROWS}
    return bar_chart(**(args | kwargs))


def trend(**kwargs: object) -> Markup:
    args: dict = {"chart_id": "trend", "title": "Monthly", "description": "Per month.", "months": MONTHS}
    return trend_chart(**(args | {"series": SERIES} | kwargs))


ALL = [bar, lambda: bar(rtl=True), trend, lambda: trend(rtl=True)]


@pytest.mark.parametrize("make", ALL)
def test_root_is_a_labelled_image(make) -> None:
    root = parse(make())
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    chart_id = root.find(f"{NS}title").get("id").removesuffix("-title")
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    assert [child.tag for child in root[:2]] == [f"{NS}title", f"{NS}desc"]
    assert root[1].get("id") == f"{chart_id}-desc"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert "Noto Sans" in root.get("font-family")


@pytest.mark.parametrize("make", ALL)
def test_no_style_attributes_and_deterministic(make) -> None:
    out = make()
    assert "style=" not in out
    assert out == make()
    for element in parse(out).iter():
        assert "style" not in element.attrib
        if element.tag == f"{NS}text":
            assert 12 <= int(element.get("font-size")) <= 13
            assert element.get("fill") == "#1b1b1b"


def test_bar_widths_are_proportional() -> None:
    rects = bars(parse(bar()))
    north, south = float(rects[0].get("width")), float(rects[1].get("width"))
    assert north > 100
    assert abs(south - north / 2) <= 1
    assert rects[0].get("fill") == rects[1].get("fill") == PALETTE[0]
    assert rects[0].get("x") == rects[1].get("x")


def test_suppressed_row_is_hatched_and_keeps_its_text() -> None:
    root = parse(bar())
    rects = bars(root)
    assert len(rects) == 3  # North, South, the hatched stub for East; the true zero has no bar
    assert rects[2].get("fill") == "url(#cases-hatch)"
    assert root.find(f".//{NS}pattern").get("id") == "cases-hatch"
    written = [plain(t) for t in texts(root)]
    assert written == ["North", "10", "South", "5", "East", "fewer than 5", "West", "0"]


def test_zero_max_draws_no_bars_but_keeps_labels_and_texts() -> None:
    root = parse(bar(rows=[("A", 0, "0"), ("B", 0, "0")]))
    assert bars(root) == []
    assert [plain(t) for t in texts(root)] == ["A", "0", "B", "0"]
    assert parse(bar(rows=[])).get("height") == "8"


def test_height_follows_rows() -> None:
    assert int(parse(bar()).get("height")) == 8 + 28 * len(ROWS)


def test_text_is_escaped() -> None:
    nasty = '<script>alert(1)</script> & "q"'
    out = bar(title=nasty, description=nasty, rows=[(nasty, 3, nasty)])
    assert "<script" not in out
    assert "&amp; &#34;q&#34;" in out
    root = parse(out)
    assert root[0].text == root[1].text == nasty
    assert [plain(t) for t in texts(root)] == [nasty, nasty]
    out = trend(title=nasty, months=[nasty], series=[(nasty, [4])], rtl=True)
    assert "<script" not in out
    assert [plain(t) for t in texts(parse(out))].count(nasty) == 2
    out = bar(chart_id='x"><script>')
    assert "<script" not in out
    assert parse(out).get("aria-labelledby") == 'x"><script>-title x"><script>-desc'


def test_rtl_mirrors_the_bar_chart() -> None:
    width = 560
    ltr, rtl = parse(bar(width=width)), parse(bar(width=width, rtl=True))
    label_w = round(width * 0.46)
    longest = bars(rtl)[0]
    assert float(longest.get("x")) + float(longest.get("width")) == width - label_w  # bars end at labels
    assert float(longest.get("x")) < width - label_w
    assert float(bars(ltr)[0].get("x")) == label_w
    assert abs(float(longest.get("width")) - float(bars(ltr)[0].get("width"))) < 0.01
    ltr_label, ltr_value = texts(ltr)[:2]
    rtl_label, rtl_value = texts(rtl)[:2]
    assert (ltr_label.get("text-anchor"), ltr_value.get("text-anchor")) == ("end", "start")
    assert (rtl_label.get("text-anchor"), rtl_value.get("text-anchor")) == ("start", "end")
    assert float(rtl_label.get("x")) > width - label_w > float(rtl_value.get("x"))
    assert float(ltr_label.get("x")) < label_w < float(ltr_value.get("x"))
    # Bidi isolates carry the direction; a direction attribute would flip anchors in browsers only.
    assert all(t.text.startswith(RLI) and t.text.endswith(PDI) for t in texts(rtl))
    assert not any(RLI in (t.text or "") for t in texts(ltr))
    assert not any("direction" in t.attrib for t in texts(rtl))


def test_trend_has_one_bar_per_month_and_series() -> None:
    root = parse(trend())
    groups = [g for g in root.iter(f"{NS}g") if g.get("aria-hidden") == "true"]
    assert len(groups) == len(MONTHS)
    rects = bars(root)
    assert len(rects) == len(MONTHS) * len(SERIES)
    assert all(float(r.get("height")) >= 0 for r in rects)
    assert [r.get("fill") for r in rects[:3]] == list(PALETTE)
    heights = {round(float(r.get("height"))) for r in rects}
    assert 0 in heights
    nov_received = float(rects[3].get("height"))
    assert abs(float(rects[4].get("height")) - nov_received * 20 / 30) < 0.05
    written = [plain(t) for t in texts(root)]
    for month in MONTHS:
        assert month in written
    for name, _ in SERIES:
        assert name in written


def test_trend_gridlines_are_round() -> None:
    root = parse(trend())
    lines = root.findall(f"{NS}line")
    assert 3 <= len(lines) <= 5
    written = [plain(t) for t in texts(root)]
    ticks = [int(w) for w in written if w.isdigit()]
    assert ticks == [0, 10, 20, 30]
    top = min(float(line.get("y1")) for line in lines)
    assert abs(float(bars(root)[3].get("y")) - top) < 0.01  # the largest value reaches the top gridline


@pytest.mark.parametrize(
    ("values", "ticks"),
    [
        ([0], [0, 1, 2]),
        ([1], [0, 1, 2]),
        ([7], [0, 2, 4, 6, 8]),
        ([10], [0, 5, 10]),
        ([1234], [0, 500, 1000, 1500]),
    ],
)
def test_trend_tick_values(values: list[int], ticks: list[int]) -> None:
    root = parse(trend(months=["Jan"], series=[("Only", values)]))
    written = [plain(t) for t in texts(root)]
    assert [int(w) for w in written if w.isdigit()] == ticks
    assert len(root.findall(f"{NS}line")) == len(ticks)


def test_trend_rtl_runs_right_to_left() -> None:
    ltr, rtl = parse(trend()), parse(trend(rtl=True))

    def month_x(root: ET.Element) -> list[float]:
        return [float(t.get("x")) for t in texts(root) if plain(t) in MONTHS]

    assert month_x(ltr) == sorted(month_x(ltr))
    assert month_x(rtl) == sorted(month_x(rtl), reverse=True)
    assert month_x(rtl)[0] > 560 / 2 > month_x(rtl)[-1]
    first_ltr, first_rtl = bars(ltr)[0], bars(rtl)[0]
    assert float(first_rtl.get("x")) > float(first_ltr.get("x"))
    tick_anchor = {t.get("text-anchor") for t in texts(rtl) if plain(t) == "30"}
    assert tick_anchor == {"start"}
    assert {t.get("text-anchor") for t in texts(ltr) if plain(t) == "30"} == {"end"}
    legend = [t for t in texts(rtl) if plain(t) in {name for name, _ in SERIES}]
    assert [t.get("text-anchor") for t in legend] == ["end"] * 3
    assert [float(t.get("x")) for t in legend] == sorted((float(t.get("x")) for t in legend), reverse=True)


def test_trend_handles_no_data() -> None:
    root = parse(trend(months=[], series=[]))
    assert bars(root) == []
    assert len(root.findall(f"{NS}line")) == 3
