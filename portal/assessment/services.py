"""Central services: store an opened report once, change its status, send statuses back."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from flask import current_app
from nacl.secret import SecretBox
from sqlalchemy import select

from portal.assessment.models import Item, Report, ReportUrl, StatusUpdate
from portal.db import db, utcnow
from portal.forwarding.transport import Transport
from portal.payload import problems as payload_problems
from portal.statuses import ALL, FINISHED


class InvalidReport(ValueError):
    """An opened payload that does not describe a report; the envelope is dead-lettered."""


def _check(payload: dict[str, Any]) -> None:
    """Every field against the schema the edge seals with, and the portal and its language
    against the portals this centre has loaded."""
    portals = {slug: portal.languages
               for slug, portal in current_app.extensions["portal.tenancy"].portals.items()}
    found = payload_problems(payload, portals=portals)
    if found:
        raise InvalidReport("; ".join(found))


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def item_for(url: str, seen_at: datetime) -> Item:
    """The existing item for this normalised URL, or a new one: repeats become one work item."""
    digest = url_digest(url)
    item = db.session.scalar(select(Item).where(Item.url_hash == digest))
    if item is None:
        item = Item(url=url, url_hash=digest, first_seen_at=seen_at, report_count=0)
        db.session.add(item)
    item.report_count += 1
    return item


def is_stored(envelope_id: str) -> bool:
    return db.session.scalar(select(Report.id).where(Report.envelope_id == envelope_id)) is not None


def store_report(payload: dict[str, Any], contact_key: bytes) -> bool:
    """Store a report from its opened payload; False when this envelope was stored before."""
    _check(payload)
    if is_stored(payload["id"]):
        return False
    contact = payload.get("contact_email") or ""
    report = Report(
        envelope_id=payload["id"],
        portal=payload["portal"],
        lang=payload["lang"],
        urgent=payload["urgent"],
        received_at=datetime.fromisoformat(payload["received_at"]),
        content_type=payload["content_type"],
        where_found=payload["where_found"],
        description=payload.get("description", ""),
        contact_sealed=SecretBox(contact_key).encrypt(contact.encode()) if contact else None,
        receipt_hash=payload["receipt_hash"],
        urls=[ReportUrl(position=i, url=u) for i, u in enumerate(payload["urls"])],
    )
    db.session.add(report)
    for url in dict.fromkeys(payload["urls"]):
        report.items.append(item_for(url, report.received_at))
    # Raises IntegrityError when another importer stored this envelope between our check and
    # this insert; the importer then leaves its batch for redelivery.
    db.session.flush()
    return True


def contact_email(report: Report, contact_key: bytes) -> str:
    if report.contact_sealed is None:
        return ""
    return SecretBox(contact_key).decrypt(report.contact_sealed).decode()


def set_status(report: Report, status: str) -> None:
    """Change a report's public status; the edge learns of it through the transport."""
    if status not in ALL:
        raise ValueError(f"unknown status {status!r}")
    if report.status == status:
        return
    now = utcnow()
    report.status = status
    report.closed_at = now if status in FINISHED else None
    db.session.add(StatusUpdate(receipt_hash=report.receipt_hash, status=status, at=now))


def ship_status_updates(transport: Transport, batch: int = 500) -> int:
    """Send each status change to the edge, signed by the centre (status_signer); the edge
    drops anything it cannot verify."""
    signer = current_app.extensions["portal.status_signer"]
    sent = 0
    for update in db.session.scalars(select(StatusUpdate).order_by(StatusUpdate.id).limit(batch)):
        message = {"receipt_hash": update.receipt_hash, "status": update.status,
                   "at": update.at.isoformat(), "signed_at": utcnow().isoformat()}
        transport.send_status(signer.sign(json.dumps(message).encode()))
        db.session.delete(update)
        db.session.commit()
        sent += 1
    return sent
