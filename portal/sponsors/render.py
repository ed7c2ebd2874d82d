"""Turning sponsor figures into what people read: labels, the HTML page, the PDF, the CSV."""

from __future__ import annotations

import csv
import io
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


@dataclass(frozen=True)
class Shown:
    """One figure as displayed: the text, and the number used for bars (0 when hidden)."""

    text: str
    value: int


def show(report: SponsorReport, value: int) -> Shown:
    count = report.count(value)
    if count.suppressed:
        return Shown(_("fewer than %(num)s", num=report.threshold), 0)
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


def change(report: SponsorReport, current: int, previous: int) -> str:
    """The comparison with the previous period, without revealing a hidden small count."""
    if report.count(current).suppressed or report.count(previous).suppressed:
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
        shown = show(report, f.outcomes.get(key, 0))
        outcome_rows.append((str(name), shown.value, shown.text))
    country_rows = []
    for code, n in f.hosting_countries:
        shown = show(report, n)
        label = _("Other countries") if code == "other" else (
            _("Not known") if code == "unknown" else code)
        country_rows.append((label, shown.value, shown.text))
    months = [m[0] for m in f.trend]

    def hidden(n: int) -> int:
        return 0 if report.count(n).suppressed else n

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
            series=[(_("Reports"), [hidden(m[1]) for m in f.trend]),
                    (_("Confirmed illegal"), [hidden(m[3]) for m in f.trend]),
                    (_("Removed"), [hidden(m[4]) for m in f.trend])],
            rtl=rtl),
    }


def page_context(report: SponsorReport, portal_name: str, lang: str) -> dict:
    return {
        "report": report, "f": report.current, "p": report.previous, "portal_name": portal_name,
        "show": lambda n: show(report, n).text, "share": share, "hours": hours,
        "change": lambda current, previous: change(report, current, previous),
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
    """The figures as rows of metric, current, previous; small counts stay hidden."""
    out = io.StringIO()
    writer = csv.writer(out)
    f, p = report.current, report.previous

    def count(value: int) -> str:
        return f"<{report.threshold}" if report.count(value).suppressed else str(value)

    def ratio(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    writer.writerow(["metric", f.period.key, p.period.key])
    for name, a, b in (("reports", f.reports, p.reports), ("urls", f.urls, p.urls),
                       ("urgent_reports", f.urgent, p.urgent), ("items", f.items, p.items),
                       ("items_assessed", f.assessed, p.assessed),
                       ("duplicates_of_known_items", f.duplicates, p.duplicates),
                       ("removals", f.removals, p.removals)):
        writer.writerow([name, count(a), count(b)])
    writer.writerow(["assessed_within_target_share", ratio(f.assessed_in_target_share),
                     ratio(p.assessed_in_target_share)])
    for key in OUTCOME_LABELS:
        writer.writerow([f"outcome:{key}", count(f.outcomes.get(key, 0)),
                         count(p.outcomes.get(key, 0))])
    for key in ACTION_NAMES:
        writer.writerow([f"action:{key}", count(f.actions.get(key, 0)),
                         count(p.actions.get(key, 0))])
    for lang in sorted(set(f.by_language) | set(p.by_language)):
        writer.writerow([f"language:{lang}", count(f.by_language.get(lang, 0)),
                         count(p.by_language.get(lang, 0))])
    for kind in sorted(set(f.by_content_type) | set(p.by_content_type)):
        writer.writerow([f"content_type:{kind}", count(f.by_content_type.get(kind, 0)),
                         count(p.by_content_type.get(kind, 0))])
    for code, n in f.hosting_countries:
        writer.writerow([f"hosting_country:{code}", count(n), ""])
    for name, a, b in (("removal_hours_median", f.removal_hours_median, p.removal_hours_median),
                       ("removal_hours_p90", f.removal_hours_p90, p.removal_hours_p90),
                       ("removed_within_3_days_share", f.removed_within_3d, p.removed_within_3d),
                       ("removed_within_7_days_share", f.removed_within_7d, p.removed_within_7d)):
        writer.writerow([name, ratio(a), ratio(b)])
    for month, reports, urls, illegal, removed in f.trend:
        for name, value in (("reports", reports), ("urls", urls), ("confirmed_illegal", illegal),
                            ("removals", removed)):
            writer.writerow([f"trend:{month}:{name}", count(value), ""])
    return out.getvalue()
