"""The central side of forwarding: take envelopes from the transport, open, store once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nacl.public import PrivateKey
from sqlalchemy.exc import IntegrityError

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
        stored, duplicates, dead = [], [], []
        try:
            for delivery in batch:
                if not delivery.data and delivery.envelope_id and is_stored(delivery.envelope_id):
                    duplicates.append(delivery)  # redelivered after its object was deleted
                    continue
                try:
                    payload = open_envelope(delivery.data, private_keys)
                    new = store_report(payload, contact_key)
                except (PoisonEnvelope, InvalidReport) as exc:
                    dead.append((delivery, str(exc)))
                    continue
                (stored if new else duplicates).append(delivery)
            # One commit for the batch; only then is anything acknowledged.
            db.session.commit()
        except IntegrityError:
            # Another importer stored one of these first: acknowledge nothing, so that every
            # message of this batch comes again and is recognised as stored.
            db.session.rollback()
            log.warning("concurrent import detected; batch left for redelivery")
            return result
        for delivery in stored + duplicates:
            delivery.ack()
        for delivery, reason in dead:
            log.error("envelope %s dead-lettered: %s", delivery.name, reason)
            transport.dead_letter(delivery, reason)
        result.imported += len(stored)
        result.duplicates += len(duplicates)
        result.dead += len(dead)
