"""Sealing on the edge: a report becomes an envelope only the central team can open.

The payload is sealed with a libsodium sealed box (X25519 + XSalsa20-Poly1305) to the
central team's current public key. This module holds no private key and no code that opens
envelopes; that lives in :mod:`portal.forwarding.opening`, which the edge never imports.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from nacl.public import PublicKey, SealedBox

ENVELOPE_VERSION = 1
MAX_ENVELOPE_BYTES = 256 * 1024


def seal(envelope_id: str, payload: dict[str, Any], kid: str, public: PublicKey) -> bytes:
    plaintext = json.dumps({**payload, "id": envelope_id}, separators=(",", ":")).encode()
    sealed = SealedBox(public).encrypt(plaintext)
    outer = {
        "v": ENVELOPE_VERSION,
        "id": envelope_id,
        "kid": kid,
        "sealed": base64.b64encode(sealed).decode(),
    }
    return json.dumps(outer, separators=(",", ":")).encode()
