"""Intake: seal a valid report and store it durably before the receipt is shown."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nacl.public import PublicKey
from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect, Engine

from portal.db import db, utcnow
from portal.forwarding.keyring import KeyringError, public_key, read_public
from portal.forwarding.models import OutboxEnvelope, ReceiptStatus
from portal.forwarding.sealing import seal
from portal.payload import VERSION, check
from portal.reporting.receipts import new_receipt, receipt_hash
from portal.statuses import RECEIVED


class SealingKey:
    """The central team's current public key, re-read when the key file changes."""

    def __init__(self, keys_path: Path):
        self.path = keys_path / "public.json"
        self._stamp: float | None = None
        self._key: tuple[str, PublicKey] | None = None
        self.get()  # fail at start-up, not at the first report

    def get(self) -> tuple[str, PublicKey]:
        try:
            stamp = self.path.stat().st_mtime
        except FileNotFoundError as exc:
            raise KeyringError(f"no public key at {self.path}") from exc
        if self._key is None or stamp != self._stamp:
            self._key = public_key(read_public(self.path.parent))
            self._stamp = stamp
        return self._key


class _SqliteWriters:
    """On SQLite, intake's write transactions take turns here, first among the threads of this
    process, then among the processes using the same database file (an ``flock`` on a file
    beside it). A writer waiting here wakes the moment the one before it is done, whereas one
    waiting on SQLite's own lock sleeps in steps of up to 100 ms, and with it every thread of
    its worker queued behind it. Other writers (the forwarder, the back office) still meet at
    SQLite's lock as before."""

    def __init__(self) -> None:
        self._threads = threading.Lock()
        self._files: dict[str, tuple[int, int]] = {}  # database -> (pid, descriptor)

    def _descriptor(self, database: str) -> int:
        # Opened by each process itself: a descriptor inherited across fork shares its lock
        # with the parent, so a child closes it (the parent's stays open) and opens its own.
        pid = os.getpid()
        known = self._files.get(database)
        if known is None or known[0] != pid:
            if known is not None:
                os.close(known[1])
            descriptor = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                 0o600)
            self._files[database] = known = (pid, descriptor)
        return known[1]

    @contextlib.contextmanager
    def turn(self, database: str | None):
        with self._threads:
            if not database or database == ":memory:" or database.startswith("file:"):
                yield
                return
            descriptor = self._descriptor(database)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)


_SQLITE_WRITERS = _SqliteWriters()


def _one_writer_at_a_time(engine: Engine):
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _SQLITE_WRITERS.turn(engine.url.database)


class _Insert:
    """One of intake's INSERTs as the database driver's own SQL, made once per dialect from the
    table's columns: each report then skips SQLAlchemy's statement cache lookup, parameter
    building and result object. The values still go through each column's SQLAlchemy bind
    processor, so what is stored is exactly what the ORM stores (tests read it back that way).
    Dialects whose drivers take other parameter styles get the Core statement."""

    MARKS: ClassVar[dict[str, str]] = {"qmark": "?", "format": "%s", "pyformat": "%s"}

    def __init__(self, table: Table, columns: tuple[str, ...]):
        self.table, self.columns = table, columns
        self._made: dict[str, tuple[str, tuple] | None] = {}

    def _for(self, dialect: Dialect) -> tuple[str, tuple] | None:
        if dialect.name not in self._made:
            mark, made = self.MARKS.get(dialect.paramstyle), None
            if mark is not None:
                # Table and column names come from our own metadata, values only as parameters.
                sql = (f"INSERT INTO {self.table.name} ({', '.join(self.columns)}) "  # noqa: S608
                       f"VALUES ({', '.join([mark] * len(self.columns))})")
                made = (sql, tuple(self.table.c[name].type.bind_processor(dialect)
                                   for name in self.columns))
            self._made[dialect.name] = made
        return self._made[dialect.name]

    def parameters(self, processors: tuple, values: dict[str, object]) -> tuple:
        return tuple(process(values[name]) if process else values[name]
                     for name, process in zip(self.columns, processors, strict=True))

    def run(self, connection: Connection, values: dict[str, object]) -> None:
        made = self._for(connection.dialect)
        if made is None:
            connection.execute(self.table.insert(), values)
            return
        sql, processors = made
        connection.exec_driver_sql(sql, self.parameters(processors, values))


_INSERT_ENVELOPE = _Insert(OutboxEnvelope.__table__,
                           ("id", "body", "created_at", "attempts", "next_attempt_at"))
_INSERT_RECEIPT = _Insert(ReceiptStatus.__table__, ("receipt_hash", "status", "updated_at"))


_JOINED: dict[str, tuple[str, tuple, tuple] | None] = {}


def _both_in_one_statement(dialect: Dialect) -> tuple[str, tuple, tuple] | None:
    """On PostgreSQL, the two INSERTs as one statement (made once per dialect, like each
    INSERT): the envelope's in a WITH clause, which the server runs to completion whether or
    not the outer INSERT reads it. One statement is its own transaction, so it is sent in
    autocommit mode: one round trip to the server instead of four (BEGIN, two INSERTs,
    COMMIT), and still both rows or neither."""
    if dialect.name not in _JOINED:
        envelope, receipt = _INSERT_ENVELOPE._for(dialect), _INSERT_RECEIPT._for(dialect)
        joined = None
        if dialect.name == "postgresql" and envelope is not None and receipt is not None:
            joined = (f"WITH envelope AS ({envelope[0]}) {receipt[0]}", envelope[1], receipt[1])
        _JOINED[dialect.name] = joined
    return _JOINED[dialect.name]


def _store(envelope: dict[str, object], receipt: dict[str, object]) -> None:
    """Commit the envelope and the receipt's status together, or neither."""
    engine = db.engine
    joined = _both_in_one_statement(engine.dialect)
    if joined is not None:
        sql, envelope_processors, receipt_processors = joined
        parameters = (_INSERT_ENVELOPE.parameters(envelope_processors, envelope)
                      + _INSERT_RECEIPT.parameters(receipt_processors, receipt))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(sql, parameters)
        return
    # Elsewhere, two plain INSERTs in one transaction, everything computed beforehand: on
    # SQLite the write lock, which every worker waits for, is held only for them and the
    # durable commit at the transaction's end. The connection is taken from the pool before
    # the turn and given back after it, not while others wait.
    with engine.connect() as connection, _one_writer_at_a_time(engine), connection.begin():
        _INSERT_ENVELOPE.run(connection, envelope)
        _INSERT_RECEIPT.run(connection, receipt)


@dataclass(frozen=True)
class NewReport:
    portal: str
    lang: str
    urls: list[str]
    content_type: str
    where_found: str
    description: str
    urgent: bool
    contact_email: str


def accept_report(report: NewReport, sealing_key: SealingKey, receipt_key: bytes) -> str:
    """Seal the report, commit the envelope and the receipt's status together, return the
    receipt. Only the ciphertext and a keyed hash of the receipt are written."""
    kid, public = sealing_key.get()
    receipt = new_receipt()
    digest = receipt_hash(receipt, receipt_key)
    envelope_id = str(uuid.uuid4())
    now = utcnow()
    payload = {
        "v": VERSION,
        "id": envelope_id,
        "portal": report.portal,
        "lang": report.lang,
        "urls": report.urls,
        "content_type": report.content_type,
        "where_found": report.where_found,
        "description": report.description,
        "urgent": report.urgent,
        "contact_email": report.contact_email,
        "received_at": now.isoformat(),
        "receipt_hash": digest,
    }
    check(payload)  # never seal what the centre would refuse: a 500 here, not a dead letter
    body = seal(envelope_id, payload, kid, public)
    _store({"id": envelope_id, "body": body, "created_at": now, "attempts": 0,
            "next_attempt_at": now},
           {"receipt_hash": digest, "status": RECEIVED, "updated_at": now})
    return receipt


def lookup_status(receipt: str | None, receipt_key: bytes) -> str | None:
    """The public status for a receipt, or None. A malformed code costs the same work."""
    digest = receipt_hash(receipt or "0" * 16, receipt_key)
    row = db.session.get(ReceiptStatus, digest)
    return row.status if (row is not None and receipt) else None
