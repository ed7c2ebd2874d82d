"""Signing status updates on the central side (Ed25519, PyNaCl). The edge never imports this.

The signing keys live beside the sealing keys, in ``signing/KID.key`` (mode 0600), and their
verify keys in ``public.json``, so 'portal keys export-public' carries them to the edges. The
centre signs each update with every signing key it holds: after 'portal keys generate' an
edge that has not yet imported the new public key file still accepts updates (by the old
key); 'portal keys retire OLD_KID' ends that once every edge has the new file.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

from nacl.signing import SigningKey

from portal.forwarding.keyring import (
    SIGNING_FOLDER,
    KeyringError,
    install_public,
    key_id,
    read_public,
    write_atomic,
)
from portal.forwarding.status_verifier import MAX_SIGNATURES, STATUS_VERSION

log = logging.getLogger(__name__)


def read_signing_keys(keys_path: Path) -> dict[str, SigningKey]:
    keys: dict[str, SigningKey] = {}
    folder = keys_path / SIGNING_FOLDER
    if folder.is_dir():
        for path in sorted(folder.glob("*.key")):
            try:
                key = SigningKey(base64.b64decode(path.read_text().strip(), validate=True))
            except (ValueError, TypeError) as exc:
                raise KeyringError(f"{path}: not a status-signing key ({exc})") from exc
            kid = key_id(bytes(key.verify_key))
            if kid != path.stem:
                raise KeyringError(f"{path}: file name does not match its key id {kid}")
            keys[kid] = key
    return keys


def check_room(keys_path: Path) -> None:
    """Refuse one more signing key than an edge accepts signatures on one update."""
    if len(read_signing_keys(keys_path)) >= MAX_SIGNATURES:
        raise KeyringError(f"already {MAX_SIGNATURES} status-signing keys: retire the old ones "
                           "first ('portal keys list', 'portal keys retire KID')")


def generate_signing_key(keys_path: Path) -> str:
    """Add a status-signing key pair: the private half under signing/, the verify key in
    public.json (which must exist: generate the sealing key pair first)."""
    check_room(keys_path)
    public = read_public(keys_path)
    key = SigningKey.generate()
    verify = bytes(key.verify_key)
    kid = key_id(verify)
    folder = keys_path / SIGNING_FOLDER
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(folder / f"{kid}.key", base64.b64encode(bytes(key)) + b"\n", 0o600)
    install_public(keys_path, replace(public, verify={**public.verify, kid: verify}))
    return kid


def ensure_signing_keys(keys_path: Path) -> dict[str, SigningKey]:
    """The centre's signing keys; one is made when there is none (a keyring from before
    updates were signed, or the demo's first start). A lock on a file in the keyring makes
    workers starting at once agree on one key."""
    keys_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(keys_path / ".signing.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        keys = read_signing_keys(keys_path)
        if not keys:
            kid = generate_signing_key(keys_path)
            log.warning("created the status-signing key %s: export the public keys again "
                        "('portal keys export-public') and import them at every edge, which "
                        "drops status updates it cannot verify", kid)
            keys = read_signing_keys(keys_path)
    finally:
        os.close(descriptor)
    if len(keys) > MAX_SIGNATURES:  # copied in by hand: an edge would refuse the updates
        raise KeyringError(f"{len(keys)} status-signing keys in {keys_path / SIGNING_FOLDER}: "
                           f"at most {MAX_SIGNATURES}; retire the old ones")
    return keys


class StatusSigner:
    """Wraps the exact bytes of a status message in an envelope signed by every key given."""

    def __init__(self, keys: dict[str, SigningKey]):
        if not keys:
            raise KeyringError("no status-signing key")
        self.keys = dict(sorted(keys.items()))

    def sign(self, body: bytes) -> bytes:
        signatures = {kid: base64.b64encode(key.sign(body).signature).decode()
                      for kid, key in self.keys.items()}
        envelope = {"v": STATUS_VERSION, "msg": base64.b64encode(body).decode(),
                    "sigs": signatures}
        return json.dumps(envelope, separators=(",", ":")).encode()
