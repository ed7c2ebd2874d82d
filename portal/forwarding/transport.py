"""Transports carry sealed envelopes to the central side and status updates back.

Every transport offers the same small interface, chosen by ``PORTAL_TRANSPORT``. The local
spool is the embedded default: plain files in the instance folder, written atomically
(temporary file, fsync, rename), so a crash never leaves half an envelope behind.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class TransportError(Exception):
    """The transport could not take or give a message now; try again later."""


@dataclass
class Delivery:
    """One message taken from the transport; ``ack`` removes it for good."""

    name: str
    data: bytes
    _ack: Callable[[], None]
    envelope_id: str | None = None

    def ack(self) -> None:
        self._ack()


class Transport(Protocol):
    def send_envelope(self, envelope_id: str, data: bytes) -> None: ...

    def receive_envelopes(self, limit: int) -> Iterator[Delivery]: ...

    def dead_letter(self, delivery: Delivery, reason: str) -> None: ...

    def send_status(self, data: bytes) -> None: ...

    def reject_status(self, delivery: Delivery, reason: str) -> None: ...

    def receive_status(self, limit: int) -> Iterator[Delivery]: ...

    def backlog(self) -> int: ...


SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class LocalSpool:
    """Envelopes and status updates as files under one folder."""

    def __init__(self, root: Path):
        self.root = root
        self.envelopes = root / "envelopes"
        self.status = root / "status"
        self.dead = root / "dead"
        self.tmp = root / "tmp"
        for folder in (self.envelopes, self.status, self.dead, self.tmp):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _write(self, folder: Path, name: str, data: bytes) -> None:
        if not SAFE_NAME.match(name):
            raise ValueError(f"unsafe spool name {name!r}")
        tmp = self.tmp / f"{name}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TransportError(f"spool write failed: {exc.strerror}") from exc

    def _read(self, folder: Path, limit: int) -> Iterator[Delivery]:
        try:
            names = sorted(os.listdir(folder))[:limit]
        except OSError as exc:
            raise TransportError(f"spool unreadable: {exc.strerror}") from exc
        for name in names:
            path = folder / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # taken by another importer in the meantime
            yield Delivery(name=name, data=data, _ack=lambda p=path: p.unlink(missing_ok=True))

    def send_envelope(self, envelope_id: str, data: bytes) -> None:
        # Idempotent: sending the same envelope twice leaves one file with the same bytes.
        self._write(self.envelopes, envelope_id.replace("-", ""), data)

    def receive_envelopes(self, limit: int = 100) -> Iterator[Delivery]:
        return self._read(self.envelopes, limit)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{secrets.token_hex(6)}"
        self._write(self.dead, name, delivery.data)
        self._write(self.dead, name + "-reason", reason.encode()[:1000])
        delivery.ack()

    def send_status(self, data: bytes) -> None:
        # Names sort by time, so updates are applied in the order they were made.
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        self._write(self.status, name, data)

    def reject_status(self, delivery: Delivery, reason: str) -> None:
        self.dead_letter(delivery, reason)

    def receive_status(self, limit: int = 500) -> Iterator[Delivery]:
        return self._read(self.status, limit)

    def backlog(self) -> int:
        return len(os.listdir(self.envelopes))


def make_transport(settings) -> Transport:
    if settings.transport == "s3":
        from portal.forwarding.aws import S3SqsTransport

        return S3SqsTransport.from_settings(settings)
    return LocalSpool(settings.spool_path)
