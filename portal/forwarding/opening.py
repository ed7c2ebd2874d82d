"""Opening envelopes on the central side, with any key of the keyring (old ones included)."""

from __future__ import annotations

import base64
import json
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from portal.forwarding.sealing import ENVELOPE_VERSION, MAX_ENVELOPE_BYTES


class PoisonEnvelope(Exception):
    """An envelope that can never be opened or understood; it goes to the dead letters."""


def open_envelope(data: bytes, private_keys: dict[str, PrivateKey]) -> dict[str, Any]:
    if len(data) > MAX_ENVELOPE_BYTES:
        raise PoisonEnvelope("envelope larger than the limit")
    try:
        outer = json.loads(data)
        envelope_id, kid, sealed = outer["id"], outer["kid"], outer["sealed"]
        version = outer["v"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonEnvelope(f"outer layer unreadable: {type(exc).__name__}") from exc
    if version != ENVELOPE_VERSION:
        raise PoisonEnvelope(f"unknown envelope version {version!r}")
    private = private_keys.get(kid)
    if private is None:
        raise PoisonEnvelope(f"no private key {kid!r} in the keyring")
    try:
        plaintext = SealedBox(private).decrypt(base64.b64decode(sealed, validate=True))
        payload = json.loads(plaintext)
    except (CryptoError, ValueError, TypeError) as exc:
        raise PoisonEnvelope(f"cannot open: {type(exc).__name__}") from exc
    if not isinstance(payload, dict) or payload.get("id") != envelope_id:
        raise PoisonEnvelope("inner id does not match the outer id")
    return payload
