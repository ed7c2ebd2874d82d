"""Turning sponsor figures into what people read: labels, the HTML page, the PDF, the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, render_template
from flask_babel import format_date, format_decimal, format_percent
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from portal.assessment.forms import OUTCOME_LABELS
from portal.i18n import text_direction
from portal.reporting.choices import CONTENT_TYPES
from portal.sponsors.aggregates import SponsorReport
from portal.sponsors.charts import bar_chart, trend_chart

ACTION_NAMES = {
    "notice": _l("Notices to hosting providers"),
    "renotice": _l("Repeated notices"),
    "hotline_referral": _l("Referrals to other hotlines"),
    "police_referral": _l("Referrals to police"),
}

# What the CSV says for a hidden figure, small or not (they must look alike).
SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Shown:
    """One figure as displayed: the text, and the number used for bars (0 when hidden)."""

    text: str
    value: int


def show(report: SponsorReport, name: str, side: str = "current") -> Shown:
    """A count of the report by its name (see :meth:`SponsorReport.value`)."""
    value = report.value(name, side)
    if value is None:
        return Shown(_("not shown"), 0)
    return Shown(format_decimal(value), value)


def period_label(period) -> str:
    """The period in the reader's language: "October 2026", "Q3 2026", "2026", or two dates."""
    from datetime import timedelta

    if period.kind == "month":
        return format_date(period.start, "LLLL y")
    if period.kind == "quarter":
        return format_date(period.start, "QQQ y")
    if period.kind == "year":
        return format_date(period.start, "y")
    last = period.end - timedelta(days=1)
    return f"{format_date(period.start, 'medium')} – {format_date(last, 'medium')}"


def share(value: float | None) -> str:
    return format_percent(value, format="#,##0%") if value is not None else "–"


def hours(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 48:
        return _("%(days)s days", days=format_decimal(round(value / 24, 1)))
    return _("%(hours)s hours", hours=format_decimal(round(value, 1)))


def shown_derived(report: SponsorReport, name: str, side: str,
                  text: Callable[[float | None], str]) -> str:
    """A share or a duration through ``text`` (:func:`share`, :func:`hours`), or "not shown"
    when it is hidden with its base."""
    return _("not shown") if report.hides(name, side) else text(report.derived(name, side))


def change(report: SponsorReport, name: str) -> str:
    """The comparison with the previous period, shown only when both counts are."""
    current, previous = report.value(name), report.value(name, "previous")
    if current is None or previous is None:
        return "–"
    difference = current - previous
    if difference == 0:
        return _("no change")
    text = format_decimal(abs(difference))
    return _("%(num)s more", num=text) if difference > 0 else _("%(num)s fewer", num=text)


def charts(report: SponsorReport, lang: str) -> dict[str, Markup]:
    rtl = lang == "ar"
    f = report.current
    outcome_rows = []
    for key, name in OUTCOME_LABELS.items():
        shown = show(report, f"outcome:{key}")
        outcome_rows.append((str(name), shown.value, shown.text))
    country_rows = []
    for code, _n in f.hosting_countries:
        shown = show(report, f"hosting_country:{code}")
        label = _("Other countries") if code == "other" else (
            _("Not known") if code == "unknown" else code)
        country_rows.append((label, shown.value, shown.text))
    months = [m[0] for m in f.trend]

    def series(name: str) -> list[int]:
        return [show(report, f"trend:{month}:{name}").value for month in months]

    return {
        "outcomes": bar_chart(chart_id="chart-outcomes", title=_("Outcomes of assessment"),
                              description=_("Addresses assessed in the period, by outcome."),
                              rows=outcome_rows, rtl=rtl),
        "countries": bar_chart(chart_id="chart-countries",
                               title=_("Where confirmed material was hosted"),
                               description=_("Addresses assessed as illegal, by hosting country."),
                               rows=country_rows, rtl=rtl),
        "trend": trend_chart(
            chart_id="chart-trend", title=_("Month by month"),
            description=_("Reports received, addresses confirmed illegal and removals in each "
                          "of the last twelve months."),
            months=months,
            series=[(_("Reports"), series("reports")),
                    (_("Confirmed illegal"), series("confirmed_illegal")),
                    (_("Removed"), series("removals"))],
            rtl=rtl),
    }


def page_context(report: SponsorReport, portal_name: str, lang: str) -> dict:
    return {
        "report": report, "f": report.current, "p": report.previous, "portal_name": portal_name,
        "show": lambda name, side="current": show(report, name, side).text,
        "share": lambda name, side="current": shown_derived(report, name, side, share),
        "hours": lambda name, side="current": shown_derived(report, name, side, hours),
        "change": lambda name: change(report, name),
        "low": report.threshold - 1,
        "outcome_names": OUTCOME_LABELS, "action_names": ACTION_NAMES,
        "content_names": CONTENT_TYPES,
        "charts": charts(report, lang),
        "show_charts": True,
        "period_label": period_label(report.current.period),
        "previous_label": period_label(report.previous.period),
        # Stored figures of an ended period say when they were computed (portal figures refresh).
        "as_of": _("Figures as of %(day)s.", day=format_date(report.current.as_of, "medium"))
        if report.current.as_of else "",
    }


def render_pdf(report: SponsorReport, portal_name: str, lang: str) -> bytes:
    from weasyprint import HTML

    context = page_context(report, portal_name, lang)
    # WeasyPrint lays out SVG text without Arabic shaping: in right-to-left scripts the PDF
    # keeps the tables, which hold every figure, and leaves the charts to the web page.
    context["show_charts"] = text_direction(lang) == "ltr"
    html = render_template("sponsors/print.html", lang=lang, **context)
    css_path = current_app.extensions["portal.tenancy"].themes_path / "_default" / "static"
    return HTML(string=html, base_url=str(css_path)).write_pdf()


def render_csv(report: SponsorReport) -> str:
    """The figures as rows of metric, current, previous; hidden figures read ``suppressed``."""
    out = io.StringIO()
    writer = csv.writer(out)
    f, p = report.current, report.previous

    def count(name: str, side: str = "current") -> str:
        value = report.value(name, side)
        return SUPPRESSED if value is None else str(value)

    def ratio(name: str, side: str = "current") -> str:
        if report.hides(name, side):
            return SUPPRESSED
        value = report.derived(name, side)
        return "" if value is None else f"{value:.4f}"

    def both(name: str, csv_name: str | None = None, text: Callable[..., str] = count) -> None:
        writer.writerow([csv_name or name, text(name), text(name, "previous")])

    writer.writerow(["metric", f.period.key, p.period.key])
    for name in ("reports", "urls", "urgent_reports", "items", "items_assessed",
                 "duplicates_of_known_items", "removals"):
        both(name)
    both("assessed_in_target_share", "assessed_within_target_share", ratio)
    for key in OUTCOME_LABELS:
        both(f"outcome:{key}")
    for key in ACTION_NAMES:
        both(f"action:{key}")
    for lang in sorted(set(f.by_language) | set(p.by_language)):
        both(f"language:{lang}")
    for kind in sorted(set(f.by_content_type) | set(p.by_content_type)):
        both(f"content_type:{kind}")
    for code, _n in f.hosting_countries:
        writer.writerow([f"hosting_country:{code}", count(f"hosting_country:{code}"), ""])
    for name, csv_name in (("removal_hours_median", None), ("removal_hours_p90", None),
                           ("removed_within_3d", "removed_within_3_days_share"),
                           ("removed_within_7d", "removed_within_7_days_share")):
        both(name, csv_name, ratio)
    for month, *_counts in f.trend:
        for name in ("reports", "urls", "confirmed_illegal", "removals"):
            writer.writerow([f"trend:{month}:{name}", count(f"trend:{month}:{name}"), ""])
    return out.getvalue()
