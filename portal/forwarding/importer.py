"""The central side of forwarding: take envelopes from the transport, open, store once.

Each envelope is stored in its own SAVEPOINT: one that fails, for whatever reason, has its rows
rolled back and goes to the dead letters with the reason, and the rest of the round is
imported. Only an error saying that the database cannot work now (connection, locks, a full
disk), whatever the envelope, stops the round: then nothing of the batch is acknowledged, and
all of it comes again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nacl.public import PrivateKey
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from portal.assessment.services import InvalidReport, is_stored, store_report
from portal.db import db
from portal.forwarding.opening import PoisonEnvelope, open_envelope
from portal.forwarding.transport import Delivery, Transport, TransportError

log = logging.getLogger(__name__)

STORED, DUPLICATE, DEAD = "stored", "duplicate", "dead"
# SQLSTATE classes of a database that cannot work now: connection (08), transaction rollback
# such as a deadlock (40), insufficient resources such as a full disk (53), object in use (55),
# operator intervention (57), system error (58).
UNAVAILABLE_SQLSTATES = frozenset({"08", "40", "53", "55", "57", "58"})
# SQLite's primary result codes of the same kind: BUSY, LOCKED, NOMEM, READONLY, IOERR,
# CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
UNAVAILABLE_SQLITE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


@dataclass
class ImportResult:
    imported: int = 0
    duplicates: int = 0
    dead: int = 0


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error says the database cannot work now, rather than that it refuses what
    one envelope holds."""
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str) and state:
        return state[:2] in UNAVAILABLE_SQLSTATES
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in UNAVAILABLE_SQLITE
    return isinstance(exc, OperationalError | InterfaceError)


def _name(exc: BaseException) -> str:
    """An error's kind for a reason or a log line; never its message, which may quote the
    report (a database error carries the statement's parameters)."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return type(exc).__name__
    state = getattr(orig, "sqlstate", None)
    return f"{type(orig).__name__} ({state})" if state else type(orig).__name__


def _begin_batch() -> None:
    """On SQLite, begin the batch's transaction now. pysqlite begins one only before a write,
    so the batch's first SAVEPOINT would begin one of its own, and its RELEASE commit it:
    a commit, and a flush to disk, for each envelope. Begun here, the savepoints nest in one
    transaction, as they do on PostgreSQL."""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN")


def _store_one(delivery: Delivery, private_keys: dict[str, PrivateKey],
               contact_key: bytes) -> tuple[str, str]:
    """``(outcome, reason)`` for one envelope; raises only when the database is unavailable."""
    try:
        payload = open_envelope(delivery.data, private_keys)
    except PoisonEnvelope as exc:
        return DEAD, str(exc)
    except Exception as exc:  # any envelope that cannot be opened is dead, whatever the error
        return DEAD, f"cannot open: {_name(exc)}"
    tries = 0
    while True:
        tries += 1
        try:
            with db.session.begin_nested():
                new = store_report(payload, contact_key)
            return (STORED if new else DUPLICATE), ""
        except InvalidReport as exc:
            return DEAD, str(exc)
        except Exception as exc:
            if database_unavailable(exc):
                raise
            if isinstance(exc, IntegrityError):
                # Another importer stored this envelope first, or one of its addresses: what
                # it committed is visible now, so a second try tells the two apart.
                if is_stored(payload["id"]):
                    return DUPLICATE, ""
                if tries == 1:
                    continue
            return DEAD, f"not stored: {_name(exc)}"


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
        outcomes: list[tuple[Delivery, str, str]] = []
        try:
            _begin_batch()
            for delivery in batch:
                if not delivery.data and delivery.envelope_id and is_stored(delivery.envelope_id):
                    outcomes.append((delivery, DUPLICATE, ""))  # its object was deleted after
                    continue
                outcomes.append((delivery, *_store_one(delivery, private_keys, contact_key)))
            # One commit for the batch; only then is anything acknowledged.
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            if isinstance(exc, IntegrityError):
                # Raised by the commit itself: acknowledge nothing, so that every message of
                # this batch comes again and is recognised as stored.
                log.warning("concurrent import detected; batch left for redelivery")
                return result
            log.error("import round stopped, batch left for redelivery: %s", _name(exc))
            raise
        left = False
        for delivery, outcome, reason in outcomes:
            if outcome == STORED:
                delivery.ack()
                result.imported += 1
            elif outcome == DUPLICATE:
                delivery.ack()
                result.duplicates += 1
            else:
                try:
                    transport.dead_letter(delivery, reason)
                except TransportError as exc:
                    # Left where it is; the next round tries again.
                    log.error("envelope %s left in place (%s), its dead letter not written: %s",
                              delivery.name, reason, exc)
                    left = True
                    continue
                log.error("envelope %s dead-lettered: %s", delivery.name, reason)
                result.dead += 1
        if left:
            return result  # this round would only take the same envelope again
