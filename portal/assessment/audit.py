"""The audit log: append-only, and hash-chained so that tampering with it is detected.

Every view of a report and every action by staff is written here: who, when, what, which item.

The chain
    Each entry stores ``prev_hash``, the ``hash`` of the entry before it (64 zeros for the first
    entry), and its own ``hash``: SHA-256 (hex) over the UTF-8 bytes of::

        json.dumps([prev_hash, id, at, actor_id, actor, action, target_type, target_id, details],
                   separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    where ``at`` is ISO-8601 in UTC with microseconds (``2025-01-31T09:15:00.123456+00:00``),
    ``actor_id`` is an integer or null, ``target_id`` is text and ``details`` is the stored text
    (canonical JSON of a dict: sorted keys, no spaces). Ids are assigned by ``record`` (last id + 1),
    never by the database, so that they are part of the hash and a gap shows a deletion.

What ``verify_chain`` detects, and what it cannot
    - a changed entry: its hash no longer matches its content;
    - a changed entry whose hash was recomputed: the next entry's ``prev_hash`` no longer links;
    - a deleted entry in the middle (or at the start): a gap in the ids;
    - an inserted or forged entry: its ``prev_hash`` or the next entry's ``prev_hash`` breaks.

    Deleting the LAST entries (truncating the log), or rewriting every entry from some point to
    the end with recomputed hashes, leaves a chain that is consistent in itself: the chain alone
    cannot show it. Operators therefore record the head (``head()``: last id and hash) somewhere
    the database's users cannot write (a separate system, a signed daily report) and pass it
    back as ``verify_chain(expected_head=(id, hash))``, which reports a log that ends before
    the recorded head or whose entry at that id has another hash. The hash is not keyed: someone
    who can write the database can compute valid hashes, so the recorded head is the anchor.

What goes into an entry
    ``details`` holds ids, outcomes and counts only (``{"outcome": "illegal", "items": 3}``),
    NEVER report text, URLs, descriptions or contact details: the log is kept for years, is
    exported, and is read by people who must not see report content. ``actor`` is the actor's
    email (or ``"system"``) kept as text, so the log stays readable when a user is removed.

Append-only
    The ORM refuses to update or delete entries (mapper events, and a guard against bulk
    ``update()``/``delete()`` through the session). Raw SQL can still do both; that is what
    the chain is for. On PostgreSQL the application's database role should also be granted
    only INSERT and SELECT on ``audit_log``.

Concurrency (keeping the chain linear)
    ``record`` reads the last entry and inserts the next one inside the caller's transaction.
    Two writers must not both read the same last entry:

    - PostgreSQL: ``record`` first takes a transaction-level advisory lock
      (``pg_advisory_xact_lock``), held until the caller commits or rolls back, so writers
      append one after the other. Under READ COMMITTED the read after the lock sees the entry
      committed by the previous holder. (Under REPEATABLE READ or SERIALIZABLE a transaction
      whose snapshot is older would read a stale last entry; its insert then fails on the
      primary key, see below.)
    - SQLite: a database has one writer at a time, and a transaction keeps the write lock
      from its first write until it ends. ``BEGIN IMMEDIATE`` cannot be issued in the middle
      of a SQLAlchemy transaction, so ``record`` takes the write lock with a write that changes
      nothing (``UPDATE audit_log SET id = id WHERE 0``) before reading the last entry; another
      writer waits (busy_timeout) instead of reading the same last entry.
    - Everywhere, as the backstop: the id is explicit (last id + 1) and the primary key (and the
      unique ``hash``) reject a second entry with the same id, so a racing writer that read a
      stale last entry fails with an IntegrityError and its whole transaction, including the
      action being audited, rolls back. The chain can never fork.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Index, Integer, Row, String, Text, event, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.db import UTCDateTime, db, utcnow

GENESIS_HASH = "0" * 64
# Key of the PostgreSQL advisory lock that serializes appends: b"audlog\0\1" as a signed 64-bit int.
ADVISORY_LOCK_KEY = 0x6175646C6F670001
MAX_DETAILS_CHARS = 4000
APPEND_ONLY = "the audit log is append-only"
SYSTEM = "system"

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("id", "at", "actor_id", "actor", "action", "target_type", "target_id", "details",
               "prev_hash", "hash")


class AuditEntry(db.Model):
    __tablename__ = "audit_log"

    # Assigned by record() (last id + 1), never by the database: the id is part of the hash.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # No foreign key: users live in another module, and the log outlives removed users.
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(254), nullable=False)
    action: Mapped[str] = mapped_column(String(60), nullable=False)
    target_type: Mapped[str] = mapped_column(String(30), nullable=False)
    target_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # Canonical JSON of a dict of ids, outcomes and counts; never report text.
    details: Mapped[str] = mapped_column(Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)

    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id"),
        Index("ix_audit_log_at", "at"),
    )

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.action} {self.target_type}:{self.target_id}>"


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    raise RuntimeError(APPEND_ONLY)


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    raise RuntimeError(APPEND_ONLY)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state) -> None:
    """Bulk ``update(AuditEntry)`` / ``delete(AuditEntry)`` skip the mapper events above."""
    table = getattr(state.statement, "table", None)
    if (state.is_update or state.is_delete) and table is not None and table.name == AuditEntry.__tablename__:
        raise RuntimeError(APPEND_ONLY)


# --- the hash ------------------------------------------------------------------------------------


def format_at(at: datetime) -> str:
    """The timestamp as hashed and exported: ISO-8601, UTC, with microseconds."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """Canonical JSON of a dict of ids, outcomes and counts (sorted keys, no spaces)."""
    if details is None:
        details = {}
    if not isinstance(details, Mapping):
        raise TypeError("audit details must be a dict")
    if not all(isinstance(key, str) for key in details):
        raise TypeError("audit details keys must be strings")
    body = json.dumps(dict(details), separators=(",", ":"), ensure_ascii=False, sort_keys=True,
                      allow_nan=False)
    if len(body) > MAX_DETAILS_CHARS:
        raise ValueError("audit details too long: record ids, outcomes and counts, never report text")
    return body


def compute_hash(*, prev_hash: str, id: int, at: datetime, actor_id: int | None, actor: str,
                 action: str, target_type: str, target_id: str, details: str) -> str:
    """SHA-256 hex of the entry's canonical serialization (see the module docstring)."""
    fields = [prev_hash, id, format_at(at), actor_id, actor, action, target_type, target_id, details]
    serialized = json.dumps(fields, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()


def _hash_of(row: AuditEntry | Row) -> str:
    return compute_hash(prev_hash=row.prev_hash, id=row.id, at=row.at, actor_id=row.actor_id,
                        actor=row.actor, action=row.action, target_type=row.target_type,
                        target_id=row.target_id, details=row.details)


# --- writing -------------------------------------------------------------------------------------


def _text_field(name: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"audit {name} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"audit {name} longer than {limit} characters")
    return value


def _take_append_lock(session) -> None:
    """Serialize appends until the caller's transaction ends (see "Concurrency" above)."""
    dialect = session.get_bind(mapper=AuditEntry.__mapper__).dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        # A write that changes no row still takes SQLite's write lock, held until commit/rollback.
        session.execute(text("UPDATE audit_log SET id = id WHERE 0"))


def record(action: str, *, actor_id: int | None, actor: str, target_type: str,
           target_id: str | int, details: dict | None = None, at: datetime | None = None) -> AuditEntry:
    """Append an entry within the caller's transaction (flushed, NOT committed).

    ``details``: ids, outcomes and counts only, never report text. ``actor``: the user's email,
    or ``SYSTEM`` with ``actor_id=None``. The caller commits together with the action itself,
    so an action is never stored without its entry. May raise IntegrityError when a racing
    writer appended the same id (see the module docstring); the caller's transaction is then
    rolled back as a whole.
    """
    if actor_id is not None and (isinstance(actor_id, bool) or not isinstance(actor_id, int)):
        raise TypeError("audit actor_id must be an int or None")
    entry = AuditEntry(
        actor_id=actor_id,
        actor=_text_field("actor", actor, 254),
        action=_text_field("action", action, 60),
        target_type=_text_field("target_type", target_type, 30),
        target_id=_text_field("target_id", str(target_id), 64),
        details=canonical_details(details),
    )
    if at is not None and at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    session = db.session
    _take_append_lock(session)
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    entry.id, entry.prev_hash = (last.id + 1, last.hash) if last else (1, GENESIS_HASH)
    # Taken after the lock, so that times follow ids (on one clock).
    entry.at = (at or utcnow()).astimezone(UTC)
    entry.hash = _hash_of(entry)
    session.add(entry)
    session.flush()
    return entry


# --- reading -------------------------------------------------------------------------------------

_COLUMNS = (AuditEntry.id, AuditEntry.at, AuditEntry.actor_id, AuditEntry.actor, AuditEntry.action,
            AuditEntry.target_type, AuditEntry.target_id, AuditEntry.details, AuditEntry.prev_hash,
            AuditEntry.hash)


def _rows(batch: int, *conditions) -> Iterator[Row]:
    """Entries in id order as plain rows (not tracked by the session), ``batch`` per query."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    after = 0
    while True:
        rows = db.session.execute(
            select(*_COLUMNS).where(AuditEntry.id > after, *conditions)
            .order_by(AuditEntry.id).limit(batch)
        ).all()
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].id


def head() -> tuple[int, str] | None:
    """The last entry's id and hash, for operators to record outside the database."""
    last = db.session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (last.id, last.hash) if last else None


def verify_chain(batch: int = 5000, *, expected_head: tuple[int, str] | None = None) -> list[str]:
    """Recompute every hash and check every link, streaming; the problems found (empty: intact).

    ``expected_head``: an earlier ``head()`` recorded elsewhere; also reports a log that ends
    before it (truncated) or whose entry at that id has another hash (rewritten).
    """
    problems: list[str] = []
    prev_id, prev_hash = 0, GENESIS_HASH
    for row in _rows(batch):
        if _hash_of(row) != row.hash:
            problems.append(f"entry {row.id}: hash does not match its content (changed?)")
        if row.id != prev_id + 1:
            problems.append(f"entry {row.id}: missing entries {prev_id + 1}..{row.id - 1} (deleted?)")
        elif row.prev_hash != prev_hash:
            if prev_id == 0:
                problems.append(f"entry {row.id}: previous hash is not the start of the log")
            else:
                problems.append(f"entry {row.id}: previous hash does not match entry {prev_id}")
        if expected_head is not None and row.id == expected_head[0] and row.hash != expected_head[1]:
            problems.append(f"entry {row.id}: hash differs from the recorded head (rewritten?)")
        prev_id, prev_hash = row.id, row.hash
    if expected_head is not None and prev_id < expected_head[0]:
        last = f"entry {prev_id}" if prev_id else "no entry"
        problems.append(f"log ends before the recorded head: last is {last}, "
                        f"the recorded head is entry {expected_head[0]} (truncated?)")
    return problems


def _csv_cell(value: Any) -> str:
    """Text for a CSV cell; one that a spreadsheet would run as a formula gets a leading quote."""
    cell = "" if value is None else str(value)
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def export_csv(out: TextIO, *, since: datetime | None = None, until: datetime | None = None,
               batch: int = 5000) -> int:
    """Write a header and the entries with ``since <= at < until`` in id order; the row count."""
    conditions = []
    if since is not None:
        conditions.append(AuditEntry.at >= since)
    if until is not None:
        conditions.append(AuditEntry.at < until)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in _rows(batch, *conditions):
        writer.writerow([_csv_cell(value) for value in (
            row.id, format_at(row.at), row.actor_id, row.actor, row.action, row.target_type,
            row.target_id, row.details, row.prev_hash, row.hash)])
        count += 1
    return count


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError("limit must be at least 1")


def entries_for(target_type: str, target_id: str | int, limit: int = 200) -> list[AuditEntry]:
    """The newest ``limit`` entries about one item, newest first."""
    _check_limit(limit)
    return list(db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.target_type == target_type, AuditEntry.target_id == str(target_id))
        .order_by(AuditEntry.id.desc()).limit(limit)
    ))


def recent(limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    """The newest entries, newest first; the next page is ``recent(limit, before_id=page[-1].id)``."""
    _check_limit(limit)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(db.session.scalars(query))
