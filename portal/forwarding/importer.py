"""The central side of forwarding: take envelopes from the transport, open, store once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nacl.public import PrivateKey

from portal.assessment.services import InvalidReport, is_stored, store_report
from portal.db import db
from portal.forwarding.opening import PoisonEnvelope, open_envelope
from portal.forwarding.transport import Transport

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    imported: int = 0
    duplicates: int = 0
    dead: int = 0


def import_once(
    transport: Transport, private_keys: dict[str, PrivateKey], contact_key: bytes,
    limit: int = 100,
) -> ImportResult:
    """Drain the envelopes there now. A message is acknowledged only after its report is
    committed, so a crash in between means a redelivery, which the envelope id makes harmless."""
    result = ImportResult()
    while True:
        batch = list(transport.receive_envelopes(limit))
        if not batch:
            return result
        for delivery in batch:
            if not delivery.data and delivery.envelope_id and is_stored(delivery.envelope_id):
                # Redelivered after the object was already imported and deleted.
                delivery.ack()
                result.duplicates += 1
                continue
            try:
                payload = open_envelope(delivery.data, private_keys)
                new = store_report(payload, contact_key)
            except (PoisonEnvelope, InvalidReport) as exc:
                db.session.rollback()
                log.error("envelope %s dead-lettered: %s", delivery.name, exc)
                transport.dead_letter(delivery, str(exc))
                result.dead += 1
                continue
            db.session.commit()
            delivery.ack()
            if new:
                result.imported += 1
            else:
                result.duplicates += 1
