"""Verifying the centre's signed status updates at the edge (Ed25519, PyNaCl).

A status update travels as a small envelope around the exact bytes the centre signed::

    {"v": 1, "msg": base64(JSON), "sigs": {KID: base64(detached Ed25519 signature), ...}}

and the signed JSON holds ``receipt_hash``, ``status``, ``at`` (when the status changed) and
``signed_at``. The centre signs with every signing key it holds, so that during a rotation an
edge that has only the older verify key still accepts the update; a signature by a key this
edge does not know is ignored, one by a key it knows must verify.

This module holds verify keys only; signing lives in :mod:`portal.forwarding.status_signer`,
which the edge never imports. An edge whose public key file has no verify key (a file from
before updates were signed) drops every update and says so at error level.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from portal.forwarding.keyring import read_public

STATUS_VERSION = 1
MAX_STATUS_BYTES = 4096
MAX_SIGNATURES = 4  # signing keys held at once by the centre (rotation overlap)
# SQS keeps a message 14 days at most: nothing older can be a genuine update still in flight.
MAX_AGE = timedelta(days=14)
NO_VERIFY_KEY = (
    "no status verify key installed at this edge: every status update from the centre is "
    "dropped. Run 'portal keys export-public' on the central side and "
    "'portal keys import-public FILE' here"
)


class BadStatusUpdate(ValueError):
    """An update that is unsigned, wrongly signed, too old or malformed. The reason never
    quotes the update's content."""


@dataclass(frozen=True)
class StatusUpdate:
    receipt_hash: str
    status: str
    at: datetime
    signed_at: datetime


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not a base64 string")
    return base64.b64decode(text, validate=True)


def _aware(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError("not a time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment


def _signed_body(data: bytes, keys: dict[str, VerifyKey]) -> bytes:
    """The signed bytes, once every signature by a key known here verifies (at least one)."""
    if len(data) > MAX_STATUS_BYTES:
        raise BadStatusUpdate("larger than the limit")
    try:
        outer = json.loads(data)
        version, body, signatures = outer["v"], _b64(outer["msg"]), outer["sigs"]
        if not isinstance(signatures, dict) or not 0 < len(signatures) <= MAX_SIGNATURES:
            raise TypeError("signatures are not a small mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise BadStatusUpdate(f"unsigned or malformed ({type(exc).__name__})") from exc
    if version != STATUS_VERSION:
        raise BadStatusUpdate("unknown version")
    known = {kid: signature for kid, signature in signatures.items() if kid in keys}
    if not known:
        raise BadStatusUpdate("signed by no verify key installed here")
    for kid, signature in known.items():
        try:
            keys[kid].verify(body, _b64(signature))
        except (CryptoError, ValueError, TypeError) as exc:
            raise BadStatusUpdate(f"signature by key {kid} does not verify") from exc
    return body


def verify_status(data: bytes, keys: dict[str, VerifyKey], now: datetime) -> StatusUpdate:
    body = _signed_body(data, keys)
    try:
        message = json.loads(body)
        update = StatusUpdate(receipt_hash=message["receipt_hash"], status=message["status"],
                              at=_aware(message["at"]), signed_at=_aware(message["signed_at"]))
        if not isinstance(update.receipt_hash, str) or not isinstance(update.status, str):
            raise TypeError("receipt hash or status not a string")
    except (ValueError, KeyError, TypeError) as exc:
        raise BadStatusUpdate(f"signed but malformed ({type(exc).__name__})") from exc
    if now - update.signed_at > MAX_AGE:
        raise BadStatusUpdate("signed too long ago (a replay)")
    return update


class StatusVerifyKeys:
    """The verify keys installed at this edge, re-read when the public key file changes, so
    that 'portal keys import-public' takes effect without a restart."""

    def __init__(self, keys_path: Path):
        self.keys_path = keys_path
        self._stamp: int | None = None
        self._keys: dict[str, VerifyKey] = {}

    def get(self) -> dict[str, VerifyKey]:
        """Raises KeyringError when the public key file is missing or unreadable."""
        path = self.keys_path / "public.json"
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is None or stamp != self._stamp:
            public = read_public(self.keys_path)
            self._keys = {kid: VerifyKey(raw) for kid, raw in public.verify.items()}
            self._stamp = stamp
        return self._keys
