"""Delivery without asking: each portal's progress report for a period, by mail to its
sponsors and, where the portal names one, to an S3 prefix of that country.

Idempotent per portal, period and recipient: what was delivered is never sent again; what
failed is retried (three attempts in a run, and again on the next run) and reported."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from portal.accounts.models import User
from portal.db import db, utcnow
from portal.i18n import use_domain
from portal.languages import babel_name
from portal.mail import MailError, Message
from portal.sponsors.models import SummaryDelivery
from portal.sponsors.render import render_csv, render_pdf

log = logging.getLogger(__name__)
ATTEMPTS = 3


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def recipients(portal) -> list[tuple[str, str]]:
    """(email, language) of every active sponsor account of the portal and of the portal's
    own report contacts."""
    found: dict[str, str] = {}
    for user in db.session.scalars(select(User).where(User.role == "sponsor",
                                                      User.disabled.is_(False))):
        if portal.slug in user.portal_list:
            found[user.email] = user.language if user.language in portal.languages \
                else portal.default_language
    for email in portal.report_emails:
        found.setdefault(email, portal.default_language)
    return sorted(found.items())


def _attempt(action: Callable[[], None], delay: float) -> str | None:
    error = None
    for attempt in range(ATTEMPTS):
        try:
            action()
            return None
        except (MailError, OSError, RuntimeError) as exc:
            error = str(exc)[:300]
        except Exception as exc:  # boto3/botocore errors come in many classes
            error = f"{type(exc).__name__}: {exc}"[:300]
        if attempt + 1 < ATTEMPTS:
            time.sleep(delay * 2 ** attempt)
    return error


def _record(portal: str, period: str, channel: str, target: str, error: str | None) -> None:
    row = db.session.scalar(select(SummaryDelivery).where(
        SummaryDelivery.portal == portal, SummaryDelivery.period == period,
        SummaryDelivery.channel == channel, SummaryDelivery.target == target))
    if row is None:
        row = SummaryDelivery(portal=portal, period=period, channel=channel, target=target,
                              status="failed", attempts=0)
        db.session.add(row)
    row.attempts += ATTEMPTS if error else 1
    row.status, row.last_error, row.updated_at = ("failed", error, utcnow()) if error else (
        "sent", None, utcnow())
    db.session.commit()


def _done(portal: str, period: str, channel: str, target: str) -> bool:
    return db.session.scalar(select(SummaryDelivery.id).where(
        SummaryDelivery.portal == portal, SummaryDelivery.period == period,
        SummaryDelivery.channel == channel, SummaryDelivery.target == target,
        SummaryDelivery.status == "sent")) is not None


def deliver(portal, spec: str, build, *, s3_client=None, retry_delay: float = 1.0) -> Outcome:
    """Send one portal's report for the period ``spec`` to everyone who has not had it."""
    report = build(portal.slug, spec, portal.timezone)
    key = report.current.period.key
    outcome = Outcome()
    mailer = current_app.extensions["portal.mailer"]
    rendered: dict[str, tuple[bytes, str]] = {}

    def files(lang: str) -> tuple[bytes, str]:
        if lang not in rendered:
            with force_locale(babel_name(lang)), use_domain("sponsors"):
                rendered[lang] = (render_pdf(report, portal.display_name(lang), lang),
                                  render_csv(report))
        return rendered[lang]

    for email, lang in recipients(portal):
        label = f"{portal.slug} {key} mail {email}"
        if _done(portal.slug, key, "mail", email):
            outcome.skipped.append(label)
            continue
        pdf, csv_text = files(lang)
        with force_locale(babel_name(lang)), use_domain("sponsors"):
            subject = _("Progress report: %(portal)s, %(period)s",
                        portal=portal.display_name(lang), period=key)
            body = _("Attached are the progress report of %(portal)s for %(period)s (PDF) and "
                     "its figures (CSV). The same report can be read at any time after signing "
                     "in to the sponsors' pages.", portal=portal.display_name(lang), period=key)
        message = Message(to=(email,), subject=subject, body=body, attachments=(
            (f"{portal.slug}-{key}.pdf", "application/pdf", pdf),
            (f"{portal.slug}-{key}.csv", "text/csv", csv_text.encode()),
        ))
        error = _attempt(lambda message=message: mailer.send(message), retry_delay)
        _record(portal.slug, key, "mail", email, error)
        (outcome.failed if error else outcome.sent).append(label + (f": {error}" if error else ""))

    if portal.report_s3:
        target = portal.report_s3.rstrip("/") + "/"
        label = f"{portal.slug} {key} s3 {target}"
        if _done(portal.slug, key, "s3", target):
            outcome.skipped.append(label)
        else:
            bucket, _sep, prefix = target.removeprefix("s3://").partition("/")
            pdf, csv_text = files(portal.default_language)
            client = s3_client or _s3()

            def upload() -> None:
                for name, body, kind in ((f"{key}.pdf", pdf, "application/pdf"),
                                         (f"{key}.csv", csv_text.encode(), "text/csv")):
                    client.put_object(Bucket=bucket, Key=f"{prefix}{portal.slug}/{name}", Body=body,
                                      ContentType=kind, ServerSideEncryption="AES256")

            error = _attempt(upload, retry_delay)
            _record(portal.slug, key, "s3", target, error)
            (outcome.failed if error else outcome.sent).append(
                label + (f": {error}" if error else ""))
    return outcome


def _s3():
    import boto3

    return boto3.session.Session().client("s3")
