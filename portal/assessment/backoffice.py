"""The analysts' work on reports and items: assignment, assessment, trace, actions, status.

Every function changes the database within the caller's transaction and writes an audit
entry; the view commits. Public statuses follow from the items: a report is *in assessment*
once opened, *action taken* when an illegal item got a notice or referral, *no action* when
every item was assessed and none is illegal, and *closed* when every illegal item is removed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale

from portal.accounts.models import User
from portal.assessment.audit import record
from portal.assessment.forms import OUTCOME_LABELS
from portal.assessment.hotlines import hotline_for, load_hotlines
from portal.assessment.models import (
    ILLEGAL,
    OUTCOMES,
    Action,
    Assessment,
    Item,
    Report,
)
from portal.assessment.notices import (
    compose_hotline_referral,
    compose_notice,
    compose_reporter_feedback,
    defang,
)
from portal.assessment.services import contact_email, set_status
from portal.assessment.trace import HostingTrace
from portal.db import db, utcnow
from portal.mail import MailError, Message
from portal.statuses import ACTION_TAKEN, CLOSED, IN_ASSESSMENT, NO_ACTION, RECEIVED

log = logging.getLogger(__name__)


def _outcome_in_english(item: Item) -> str:
    """Notices and referrals are international: the outcome is named in English."""
    with force_locale("en"):
        return str(OUTCOME_LABELS[item.last_outcome or "international_illegal"])


class ActionRefused(Exception):
    """The action cannot be taken on this item now; the message says why (translated)."""


def audit(user: User, action: str, target_type: str, target_id: int | str, **details) -> None:
    record(action, actor_id=user.id, actor=user.email, target_type=target_type,
           target_id=target_id, details=details or None)


def _settings():
    return current_app.extensions["portal.settings"]


def _mailer():
    return current_app.extensions["portal.mailer"]


# -- reports -------------------------------------------------------------------------------------


def open_report(report: Report, user: User) -> bool:
    """Record the view; assign the report to this analyst unless someone has it. True when the
    report is (now) this user's."""
    audit(user, "report.view", "report", report.id)
    if report.assigned_to is None:
        report.assigned_to, report.assigned_at = user.id, utcnow()
        audit(user, "report.assign", "report", report.id)
        if report.status == RECEIVED:
            change_status(report, IN_ASSESSMENT)
    return report.assigned_to == user.id


def reassign(report: Report, lead: User, to: User | None) -> None:
    report.assigned_to = to.id if to else None
    report.assigned_at = utcnow() if to else None
    audit(lead, "report.reassign", "report", report.id, to=to.id if to else None)


def derived_status(report: Report) -> str:
    items = report.items
    if not items or any(i.last_outcome is None for i in items):
        return IN_ASSESSMENT if report.assigned_to or report.status != RECEIVED else RECEIVED
    illegal = [i for i in items if i.last_outcome in ILLEGAL]
    if not illegal:
        return NO_ACTION
    if all(i.removed_at for i in illegal):
        return CLOSED
    acted = {a.item_id for a in db.session.scalars(
        db.select(Action).where(Action.item_id.in_([i.id for i in illegal])))}
    return ACTION_TAKEN if acted else IN_ASSESSMENT


def change_status(report: Report, status: str) -> None:
    """Move the public status; it travels back to the edge, and a reporter who left an email
    hears of it in the report's language, with nothing about the content."""
    if report.status == status:
        return
    set_status(report, status)
    email = contact_email(report, current_app.extensions["portal.contact_key"])
    if email:
        subject, body = compose_reporter_feedback(status, report.lang)
        try:
            _mailer().send(Message(to=(email,), subject=subject, body=body))
        except MailError as exc:
            log.warning("reporter feedback not sent: %s", exc)


def refresh_reports(item: Item) -> None:
    for report in item.reports:
        change_status(report, derived_status(report))


# -- assessment ----------------------------------------------------------------------------------


def can_assess(item: Item, user: User) -> bool:
    """Anyone may assess a new item; an assessed one is reopened by a lead only."""
    return item.last_outcome is None or user.role == "lead"


def assess(item: Item, user: User, *, outcome: str, national_country: str, category: str,
           age_group: str, notes: str) -> Assessment:
    if outcome not in OUTCOMES:
        raise ValueError(outcome)
    if not can_assess(item, user):
        raise ActionRefused("reopen")
    reopened = item.last_outcome is not None
    entry = Assessment(item_id=item.id, analyst_id=user.id, outcome=outcome,
                       national_country=national_country or None, category=category or None,
                       age_group=age_group or None, notes=notes)
    db.session.add(entry)
    item.last_outcome, item.national_country = outcome, national_country or None
    item.category, item.age_group = category or None, age_group or None
    item.last_assessed_at, item.last_assessed_by = utcnow(), user.id
    audit(user, "item.reassess" if reopened else "item.assess", "item", item.id,
          outcome=outcome, category=category or None)
    refresh_reports(item)
    return entry


# -- hosting trace -------------------------------------------------------------------------------


def save_trace(item: Item, user: User, trace: HostingTrace) -> None:
    item.trace_addresses = ", ".join(trace.addresses)[:500] or None
    item.trace_country = trace.country or None
    item.trace_asn = trace.asn or None
    item.trace_network = (trace.network or None) and trace.network[:200]
    item.trace_cdn = trace.cdn or None
    item.trace_error = trace.error or None
    item.traced_at, item.trace_corrected = utcnow(), False
    audit(user, "item.trace", "item", item.id, country=trace.country or None,
          asn=trace.asn or None, cdn=bool(trace.cdn), error=trace.error or None)


def correct_trace(item: Item, user: User, *, country: str, asn: str, network: str) -> None:
    item.trace_country, item.trace_asn = country or None, asn or None
    item.trace_network, item.trace_corrected = network or None, True
    item.traced_at = item.traced_at or utcnow()
    audit(user, "item.trace_corrected", "item", item.id, country=country or None, asn=asn or None)


# -- actions -------------------------------------------------------------------------------------


def _add_action(item: Item, user: User, kind: str, detail: str = "") -> Action:
    action = Action(item_id=item.id, kind=kind, analyst_id=user.id, detail=detail[:500])
    db.session.add(action)
    db.session.flush()
    audit(user, f"action.{kind}", "item", item.id, action_id=action.id)
    return action


def _require_illegal(item: Item) -> None:
    if item.last_outcome not in ILLEGAL:
        raise ActionRefused("not_illegal")
    if item.removed_at:
        raise ActionRefused("removed")


def renotice_due(item: Item) -> bool:
    return bool(item.notice_due_at and not item.removed_at and item.notice_due_at <= utcnow())


def send_notice(item: Item, user: User, recipient: str) -> Action:
    """Notice and takedown to the hosting provider's abuse contact, by mail."""
    _require_illegal(item)
    renotice = item.notice_due_at is not None
    if renotice and not renotice_due(item):
        raise ActionRefused("renotice_not_due")
    settings = _settings()
    host = item.url.split("/")[2] if "://" in item.url else item.url
    subject, body = compose_notice(
        url_defanged=defang(item.url), host=host,
        addresses=(item.trace_addresses or "").split(", ") if item.trace_addresses else [],
        network=item.trace_network or "", country=item.trace_country or "",
        outcome_label=_outcome_in_english(item),
        reference=f"PORTAL-{item.id}", team_name=settings.team_name,
        team_email=settings.mail_from, renotice=renotice,
    )
    try:
        _mailer().send(Message(to=(recipient,), subject=subject, body=body,
                               reply_to=settings.mail_from))
    except MailError as exc:
        raise ActionRefused("mail_failed") from exc
    item.notice_due_at = utcnow() + timedelta(hours=settings.renotice_hours)
    action = _add_action(item, user, "renotice" if renotice else "notice", recipient)
    refresh_reports(item)
    return action


def refer_to_hotline(item: Item, user: User) -> Action:
    """To the hotline of the hosting country; where there is none, mark the item for
    law-enforcement referral."""
    _require_illegal(item)
    if not item.trace_country:
        raise ActionRefused("no_country")
    hotline = hotline_for(item.trace_country, _hotlines())
    if hotline is None:
        item.law_enforcement_needed = True
        action = _add_action(item, user, "law_enforcement_needed", item.trace_country)
    else:
        subject, body = compose_hotline_referral(
            hotline_name=hotline.name, url_defanged=defang(item.url),
            country=item.trace_country, network=item.trace_network or "",
            addresses=(item.trace_addresses or "").split(", ") if item.trace_addresses else [],
            outcome_label=_outcome_in_english(item),
            reference=f"PORTAL-{item.id}", team_name=_settings().team_name,
        )
        try:
            _mailer().send(Message(to=(hotline.email,), subject=subject, body=body,
                                   reply_to=_settings().mail_from))
        except MailError as exc:
            raise ActionRefused("mail_failed") from exc
        action = _add_action(item, user, "hotline_referral", f"{item.trace_country} {hotline.name}")
    refresh_reports(item)
    return action


def refer_to_police(item: Item, user: User, reference: str) -> Action:
    _require_illegal(item)
    item.law_enforcement_needed = False
    action = _add_action(item, user, "police_referral", reference)
    refresh_reports(item)
    return action


def confirm_removed(item: Item, user: User) -> Action:
    _require_illegal(item)
    now = utcnow()
    first = min((r.received_at for r in item.reports), default=item.first_seen_at)
    item.removed_at, item.removal_seconds = now, int((now - first).total_seconds())
    item.notice_due_at = None
    action = _add_action(item, user, "removed")
    refresh_reports(item)
    return action


def _hotlines():
    cache = current_app.extensions.setdefault("portal.hotlines", {})
    if "data" not in cache:
        cache["data"] = load_hotlines(_settings().hotlines_path)
    return cache["data"]
