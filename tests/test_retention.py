"""Stored sponsor figures and ``portal purge``: what goes, what stays, and that the sponsor
figures of a purged period are still the ones computed while its reports were there."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.assessment.audit import AuditEntry, verify_chain
from portal.assessment.models import Action, Assessment, Item, Report
from portal.db import db
from portal.forwarding.models import ReceiptStatus
from portal.retention import purge
from portal.sponsors.aggregates import compute
from portal.sponsors.figures import Figuring, PeriodPurged
from portal.sponsors.models import PeriodFigures
from portal.sponsors.periods import Period
from tests.conftest import make_settings, portal_cli
from tests.sponsor_data import NAIROBI, at, fill, october

NOW = at("2026-11-23T12:00:00")


@pytest.fixture
def data(app):
    return fill()


def figuring(now: datetime = NOW) -> Figuring:
    return Figuring(target_hours=24, urgent_target_hours=2, retention_days=730, now=now)


def comparable(figures) -> dict:
    return {k: v for k, v in asdict(figures).items() if k not in ("as_of", "trend")}


def test_stored_figures_are_the_computed_ones_until_the_next_refresh(data):
    live = figuring().report("demo", october(), threshold=5)
    assert live.current.as_of is None
    # Ended periods from the first report (30 September in Nairobi): 2026-09, 2026-10, 2026-Q3.
    assert figuring().refresh("demo", NAIROBI) == 3
    db.session.commit()
    assert set(db.session.scalars(select(PeriodFigures.period))) == {"2026-09", "2026-10",
                                                                     "2026-Q3"}
    stored = figuring().report("demo", october(), threshold=5)
    assert stored.current.as_of == NOW and stored.previous.as_of == NOW
    assert comparable(stored.current) == comparable(live.current)
    assert comparable(stored.previous) == comparable(live.previous)
    assert stored.current.trend == live.current.trend == compute(
        "demo", october(), target_hours=24, urgent_target_hours=2).trend

    # An assessment changed later shows only after the next refresh.
    data["B"].last_outcome = "national_illegal"
    db.session.commit()
    assert figuring().report("demo", october(), 5).current.outcomes["national_illegal"] == 1
    assert figuring().refresh("demo", NAIROBI) == 3
    assert figuring().report("demo", october(), 5).current.outcomes["national_illegal"] == 2

    # A period still running is always computed; once settled, a stored one is left alone.
    november = Period("month", date(2026, 11, 1), date(2026, 12, 1), NAIROBI)
    assert figuring().figures("demo", november).as_of is None
    later = figuring(at("2028-02-01T00:00:00"))
    later.refresh("demo", NAIROBI)
    db.session.commit()
    row = db.session.scalar(select(PeriodFigures).where(PeriodFigures.period == "2026-10"))
    assert row.computed_at == NOW and not row.final
    assert db.session.scalar(select(PeriodFigures).where(
        PeriodFigures.period == "2026-11")).computed_at == later.now


def test_custom_periods_cannot_reach_before_the_reports_held(data):
    now = at("2028-12-01T00:00:00")  # horizon: 730 days earlier, 2026-12-02
    with pytest.raises(PeriodPurged) as caught:
        figuring(now).figures("demo", Period("custom", date(2026, 11, 1), date(2026, 12, 10),
                                             NAIROBI))
    assert caught.value.held_from == date(2026, 12, 3)
    held = Period("custom", date(2026, 12, 3), date(2027, 1, 1), NAIROBI)
    assert figuring(now).figures("demo", held).reports == 0


def _prepare(data) -> None:
    reports = {r.id: r for r in db.session.scalars(select(Report))}
    for report in reports.values():
        report.status, report.closed_at = "closed", at("2026-10-20T00:00:00")
    reports[1].contact_sealed = b"sealed contact"
    reports[2].status = "no_action"
    reports[4].status, reports[4].closed_at = "received", None  # still open: kept
    for n, closed, status in ((7, "2028-10-01T00:00:00", "closed"),   # 31 days: contact goes
                              (8, "2028-10-25T00:00:00", "closed"),   # 7 days: contact stays
                              (9, None, "in_assessment")):            # open: contact stays
        db.session.add(Report(envelope_id=f"00000000-0000-4000-8000-{n:012d}", portal="demo",
                              lang="en", received_at=at("2028-09-30T00:00:00"),
                              content_type="images", where_found="website",
                              receipt_hash=f"{n:064d}", status=status,
                              closed_at=at(closed) if closed else None,
                              contact_sealed=b"sealed contact"))
    db.session.add_all([ReceiptStatus(receipt_hash="a" * 64, status="closed",
                                      updated_at=at("2026-10-20T00:00:00")),
                        ReceiptStatus(receipt_hash="b" * 64, status="received",
                                      updated_at=at("2028-10-20T00:00:00"))])
    db.session.commit()


def test_purge_keeps_the_figures_and_deletes_what_the_rules_say(app, data):
    _prepare(data)
    now = at("2028-11-01T00:00:00")  # horizon: 2026-11-02 00:00 UTC (2028 has 29 February)
    settings = app.extensions["portal.settings"]
    before = figuring(now).report("demo", october(), threshold=5)
    before_all = figuring(now).report(None, Period("month", date(2026, 10, 1),
                                                   date(2026, 11, 1), "UTC"), threshold=5)
    assert before.current.as_of is None and before.current.reports == 3

    counted = purge(settings, {"demo": NAIROBI}, now=now, dry_run=True)
    assert db.session.scalar(select(func.count()).select_from(Report)) == 9
    assert db.session.scalar(select(func.count()).select_from(PeriodFigures)) == 0

    done = purge(settings, {"demo": NAIROBI}, now=now)
    assert done == counted
    # Contacts of reports 1 (closed two years ago) and 7 (closed 31 days ago).
    assert done.contacts_removed == 2
    # 2026-09, 2026-10, 2026-11, 2026-Q3, 2026-Q4 and 2026, for demo and for all portals.
    assert done.periods_stored == 12
    # Reports 1, 2, 3, 5 and 6 are finished and older than the horizon; 4 is still open.
    assert done.reports_deleted == 5
    assert set(db.session.scalars(select(Report.id))) == {4, 7, 8, 9}
    contacts = dict(db.session.execute(select(Report.id, Report.contact_sealed)).all())
    assert contacts == {4: None, 7: None, 8: b"sealed contact", 9: b"sealed contact"}
    # A (removed), B (not illegal) and E (not found) are no longer named and quiet; C had a
    # police referral after the horizon, D is named by the open report 4.
    assert done.items_deleted == 3
    assert set(db.session.scalars(select(Item.url))) == {data["C"].url, data["D"].url}
    assert set(db.session.scalars(select(Assessment.item_id))) == {data["C"].id}
    assert set(db.session.scalars(select(Action.kind))) == {"police_referral"}
    assert done.receipts_forgotten == 1
    assert set(db.session.scalars(select(ReceiptStatus.receipt_hash))) == {"b" * 64}

    # The sponsor figures of the purged periods are the ones computed before.
    after = figuring(now).report("demo", october(), threshold=5)
    assert after.current.as_of == now
    assert comparable(after.current) == comparable(before.current)
    assert comparable(after.previous) == comparable(before.previous)
    assert after.current.trend == before.current.trend
    after_all = figuring(now).report(None, before_all.current.period, threshold=5)
    assert comparable(after_all.current) == comparable(before_all.current)
    assert all(db.session.scalars(select(PeriodFigures.final)))
    # ... and a refresh never recomputes them from what is left.
    figuring(now).refresh("demo", NAIROBI)
    assert comparable(figuring(now).report("demo", october(), 5).current) == \
        comparable(before.current)

    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.action == "retention.purge" and '"reports_deleted":5' in entry.details
    assert verify_chain() == []
    again = purge(settings, {"demo": NAIROBI}, now=now)
    assert (again.reports_deleted, again.items_deleted, again.periods_stored,
            again.contacts_removed, again.receipts_forgotten) == (0, 0, 0, 0, 0)


def test_purge_and_refresh_commands(instance):
    from portal.app import create_app

    app = create_app(make_settings(instance))
    old = datetime.now(UTC) - timedelta(days=800)
    with app.app_context():
        for n, status in ((1, "closed"), (2, "received")):
            db.session.add(Report(envelope_id=f"00000000-0000-4000-8000-{n:012d}", portal="demo",
                                  lang="en", received_at=old, content_type="images",
                                  where_found="website", receipt_hash=f"{n:064d}", status=status,
                                  closed_at=old if status == "closed" else None))
        db.session.commit()
        db.engine.dispose()
    env = {"PORTAL_DATABASE_URL": app.extensions["portal.settings"].database_url}
    dry = portal_cli(instance, "purge", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "reports deleted 1" in dry.stdout and "dry run: nothing was changed" in dry.stdout
    done = portal_cli(instance, "purge", env=env)
    assert done.returncode == 0, done.stderr
    assert "reports deleted 1" in done.stdout and "dry run" not in done.stdout
    assert "reports deleted 0" in portal_cli(instance, "purge", env=env).stdout
    refreshed = portal_cli(instance, "figures", "refresh", env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert refreshed.stdout.startswith("stored ")
    with app.app_context():
        assert set(db.session.scalars(select(Report.status))) == {"received"}
        assert db.session.scalar(select(func.count()).select_from(PeriodFigures)) > 0


def test_closing_time_is_set_on_closure_and_cleared_on_reopening(data):
    from portal.assessment.services import set_status

    report = db.session.get(Report, 1)
    set_status(report, "in_assessment")
    assert report.closed_at is None
    set_status(report, "no_action")
    first = report.closed_at
    assert first is not None
    set_status(report, "closed")
    assert report.closed_at is not None and report.closed_at >= first
    set_status(report, "in_assessment")  # reopened: contact retention starts again at closure
    assert report.closed_at is None
