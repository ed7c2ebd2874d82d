"""Small helpers for keys derived from the deployment's secret key."""

import hashlib
import hmac


def derive_key(secret: str, label: str) -> bytes:
    """A separate 32-byte key for one purpose, so that no two features share a key."""
    return hmac.new(secret.encode(), b"portal:" + label.encode(), hashlib.sha256).digest()
