"""Which figures of a sponsor report may be shown: primary and complementary suppression.

Every figure a sponsor report publishes, on the page, in the PDF, in the CSV or on the staff
overview, is looked up through :class:`~portal.sponsors.aggregates.SponsorReport`, which asks
:func:`hidden_figures` once. With ``T`` the threshold (``PORTAL_SPONSOR_MIN_COUNT``):

1. *Small counts*: a count from 1 to T-1 is hidden. Zero is shown.
2. *Small totals*: when a total is hidden because it is small, every cell of each of its
   breakdowns is hidden as well, zeros included (so that "all of them in French" is not shown
   either), and so on down the breakdowns of those cells.
3. *Complementary cells*: the figures are tied by equations, a total and the cells that add
   up to it (listed in :func:`figure_table`; "the rest" of a total, such as the reports not
   marked urgent, is a cell that is never shown). From the shown figures a reader can work out
   exactly every linear combination of hidden figures that these equations imply, and nothing
   else. The figures are safe when

   a. no hidden small count can be worked out, and
   b. for every breakdown, the sum of its hidden cells, whenever it can be worked out (as the
      total minus the shown cells, or through other breakdowns), is 0 or at least T; and so is
      the sum of those of them that are, or are not, cells of another equation.

   While they are not, one more figure is hidden, and the test starts again: of the equations
   at fault, the smallest shown non-zero cell that puts this fault right; failing one, their
   smallest shown total; failing that, the same among the equations linked to them by a hidden
   figure. So a breakdown with one small cell loses its next-smallest cell too; one whose two
   small cells add up to less than T loses a third; a total is hidden only when no cell helps.
4. *Derived figures* go with their base (:data:`DERIVED_BASE`): the share assessed within the
   target time with the items assessed; removal times and shares with the removals. The change
   from the previous period is shown only when both counts are (``render.change`` reads both
   through :meth:`SponsorReport.value`, which gives None for a hidden count).

All hidden figures look alike. Marking the small ones differently would tell the reader that
the other hidden ones are not small, which can be enough to work them out: with a total of 6,
one cell "fewer than 5" and one hidden but not small, the cells are 1 and 5.

Left out on purpose: inequalities (a month's confirmed illegal items may also be another
month's, so they add up to at least a quarter's, not exactly to it); the count behind a share
whose base is shown (the share times the base: 1 of 6 removals within 3 days); and other
reports: the same count can be hidden in one period's report and shown in another's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from portal.assessment.models import ILLEGAL, OUTCOMES

if TYPE_CHECKING:
    from portal.sponsors.aggregates import Figures

# A figure: the side of the report ("current" or "previous") and its name, as in the CSV.
Key = tuple[str, str]
SIDES = ("current", "previous")
DERIVED_BASE = {
    "assessed_in_target_share": "items_assessed",
    "removal_hours_median": "removals",
    "removal_hours_p90": "removals",
    "removed_within_3d": "removals",
    "removed_within_7d": "removals",
}


@dataclass(frozen=True)
class Equation:
    """``total`` is the sum of ``cells``."""

    total: Key
    cells: tuple[Key, ...]

    @property
    def keys(self) -> tuple[Key, ...]:
        return (self.total, *self.cells)


@dataclass
class Table:
    """Every figure of a report with its value, the ones never shown, and the equations."""

    values: dict[Key, int] = field(default_factory=dict)
    unshown: set[Key] = field(default_factory=set)
    equations: list[Equation] = field(default_factory=list)

    def put(self, side: str, name: str, value: int, *, shown: bool = True) -> Key:
        key = (side, name)
        self.values[key] = value
        if not shown:
            self.unshown.add(key)
        return key

    def add(self, total: Key, cells: Iterable[Key]) -> None:
        cells = tuple(cells)
        if cells:  # a breakdown with no rows tells nothing (its total is 0)
            self.equations.append(Equation(total, cells))


def figure_table(current: Figures, previous: Figures) -> Table:
    """The figures of a report and the equations between them. For each period:
    reports = by language = by content type = urgent + not urgent; URLs = repeats + the rest;
    items = assessed + not yet assessed; assessed = the outcomes; confirmed illegal = the two
    illegal outcomes = (this period only) the hosting countries; and, when months of the trend
    cover the period exactly, its reports, URLs and removals are theirs added up (and, for one
    month, its confirmed illegal items are that month's)."""
    table = Table()
    languages = sorted(set(current.by_language) | set(previous.by_language))
    kinds = sorted(set(current.by_content_type) | set(previous.by_content_type))
    actions = list(dict.fromkeys([*current.actions, *previous.actions]))
    for side, f in zip(SIDES, (current, previous), strict=True):
        reports = table.put(side, "reports", f.reports)
        table.add(reports, [table.put(side, f"language:{lang}", f.by_language.get(lang, 0))
                            for lang in languages])
        table.add(reports, [table.put(side, f"content_type:{kind}", f.by_content_type.get(kind, 0))
                            for kind in kinds])
        table.add(reports, [table.put(side, "urgent_reports", f.urgent),
                            table.put(side, "reports_not_urgent", f.reports - f.urgent, shown=False)])
        table.add(table.put(side, "urls", f.urls),
                  [table.put(side, "duplicates_of_known_items", f.duplicates),
                   table.put(side, "urls_not_known_before", max(0, f.urls - f.duplicates),
                             shown=False)])
        assessed = table.put(side, "items_assessed", f.assessed)
        table.add(table.put(side, "items", f.items),
                  [assessed, table.put(side, "items_not_assessed", max(0, f.items - f.assessed),
                                       shown=False)])
        outcomes = {key: table.put(side, f"outcome:{key}", f.outcomes.get(key, 0)) for key in OUTCOMES}
        table.add(assessed, outcomes.values())
        illegal = table.put(side, "confirmed_illegal", sum(f.outcomes.get(k, 0) for k in ILLEGAL))
        table.add(illegal, [outcomes[key] for key in ILLEGAL])
        if side == "current":
            table.add(illegal, [table.put(side, f"hosting_country:{code}", n)
                                for code, n in f.hosting_countries])
        for kind in actions:
            table.put(side, f"action:{kind}", f.actions.get(kind, 0))
        table.put(side, "removals", f.removals)
    _trend(table, current, previous)
    return table


def _trend(table: Table, current: Figures, previous: Figures) -> None:
    names = ("reports", "urls", "confirmed_illegal", "removals")
    for month, *counts in current.trend:
        for name, value in zip(names, counts, strict=True):
            table.put("current", f"trend:{month}:{name}", value)
    held = {row[0] for row in current.trend}
    months = [m for m in current.period.months(12) if m.key in held] if held else []
    for side, f in zip(SIDES, (current, previous), strict=True):
        inside = [m for m in months if f.period.start <= m.start and m.end <= f.period.end]
        if not inside or inside[0].start != f.period.start or inside[-1].end != f.period.end:
            continue
        for name in ("reports", "urls", "removals"):
            table.add((side, name), [("current", f"trend:{m.key}:{name}") for m in inside])
        if len(inside) == 1:
            table.add((side, "confirmed_illegal"), [("current", f"trend:{inside[0].key}:confirmed_illegal")])


class Span:
    """The combinations of hidden figures that the equations let a reader work out: the row
    space of the equations restricted to the hidden figures, kept in reduced echelon form."""

    def __init__(self, equations: list[Equation], hidden: set[Key]):
        self.rows: dict[Key, dict[Key, Fraction]] = {}
        for equation in equations:
            row = {key: Fraction(-1 if key != equation.total else 1)
                   for key in equation.keys if key in hidden}
            self._add(row)

    def _reduce(self, row: dict[Key, Fraction]) -> dict[Key, Fraction]:
        row = dict(row)
        for pivot, basis in self.rows.items():
            factor = row.get(pivot)
            if factor:
                for key, value in basis.items():
                    left = row.get(key, Fraction(0)) - factor * value
                    if left:
                        row[key] = left
                    else:
                        row.pop(key, None)
        return row

    def _add(self, row: dict[Key, Fraction]) -> None:
        row = self._reduce(row)
        if not row:
            return
        pivot = next(iter(row))
        row = {key: value / row[pivot] for key, value in row.items()}
        for basis in self.rows.values():
            factor = basis.get(pivot)
            if factor:
                for key, value in row.items():
                    left = basis.get(key, Fraction(0)) - factor * value
                    if left:
                        basis[key] = left
                    else:
                        basis.pop(key, None)
        self.rows[pivot] = row

    def knows_sum(self, keys: Iterable[Key]) -> bool:
        """Whether the sum of these hidden figures can be worked out."""
        return not self._reduce({key: Fraction(1) for key in keys})


@dataclass(frozen=True)
class Fault:
    keys: frozenset[Key]
    equation: Equation | None  # the breakdown at fault (rule 3b), None for rule 3a


def hidden_figures(table: Table, threshold: int) -> frozenset[Key]:
    """The shown figures of ``table`` that must be hidden (rules 1 to 3 above)."""
    values = table.values

    def small(key: Key) -> bool:
        return 0 < values[key] < threshold

    hidden = set(table.unshown)
    small_totals = {key for key in values if key not in table.unshown and small(key)}
    grown = True
    while grown:
        grown = False
        for equation in table.equations:
            if equation.total in small_totals and not small_totals.issuperset(equation.cells):
                small_totals.update(equation.cells)
                grown = True
    hidden |= small_totals
    while (fault := _fault(table, hidden, threshold)) is not None:
        pick = _complement(table, hidden, fault)
        if pick is None:  # nothing shown is left to hide around it
            break
        hidden.add(pick)
    return frozenset(hidden - table.unshown)


def _fault(table: Table, hidden: set[Key], threshold: int) -> Fault | None:
    span = Span(table.equations, hidden)
    for equation in table.equations:
        part = frozenset(key for key in equation.cells if key in hidden)
        if not part:
            continue
        groups = [part]
        for other in table.equations:
            inside = part.intersection(other.keys)
            if other is not equation and inside and inside != part:
                groups += [inside, part - inside]
        for group in groups:
            if 0 < sum(table.values[key] for key in group) < threshold and span.knows_sum(group):
                return Fault(group, equation)
    for key in table.values:
        if key in hidden and 0 < table.values[key] < threshold and span.knows_sum([key]):
            return Fault(frozenset([key]), None)
    return None


def _complement(table: Table, hidden: set[Key], fault: Fault) -> Key | None:
    """The figure to hide next for ``fault``: see rule 3 of the module docstring."""
    around = [e for e in table.equations if e is fault.equation or fault.keys.intersection(e.keys)]
    around.sort(key=lambda e: e is not fault.equation)
    seen = set(map(id, around))
    first = None
    while around:
        for role in ("cells", "totals"):
            keys = [k for e in around for k in (e.cells if role == "cells" else (e.total,))]
            shown = sorted({k for k in keys if k not in hidden and table.values[k] > 0},
                           key=lambda k: (table.values[k], keys.index(k)))
            for key in shown:
                if not Span(table.equations, hidden | {key}).knows_sum(fault.keys):
                    return key
                first = first or key
        reach = {k for e in around for k in e.keys if k in hidden}
        around = [e for e in table.equations if id(e) not in seen and reach.intersection(e.keys)]
        seen.update(map(id, around))
    return first
