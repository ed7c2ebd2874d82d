"""Receipt codes: 16 random digits shown once, stored only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

DIGITS = 16


def new_receipt() -> str:
    """Each of the 10**16 codes equally likely, drawn from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def group(receipt: str) -> str:
    """``1234567890123456`` -> ``1234 5678 9012 3456``, easier to read and copy."""
    return " ".join(receipt[i : i + 4] for i in range(0, len(receipt), 4))


def clean(text: str) -> str | None:
    """The digits of what someone typed, if they can be a receipt (spaces, dashes allowed)."""
    digits = re.sub(r"[\s\-–.]", "", text or "")
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def receipt_hash(receipt: str, key: bytes) -> str:
    return hmac.new(key, receipt.encode(), hashlib.sha256).hexdigest()
