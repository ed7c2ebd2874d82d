"""The keyring on disk: public keys for sealing, private keys (central only) for opening.

Layout of ``PORTAL_KEYS_PATH``::

    public.json          {"current": KID, "keys": {KID: base64 X25519 public key, ...}}
    private/KID.key      base64 X25519 private key, mode 0600 (central side only)

A key id (KID) is the first 16 hex digits of the SHA-256 of the public key, so an edge and
the central side agree on it without coordination.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey, PublicKey


class KeyringError(Exception):
    pass


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKeys:
    current: str
    keys: dict[str, bytes]

    def to_json(self) -> str:
        return json.dumps(
            {
                "current": self.current,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str) -> PublicKeys:
        try:
            data = json.loads(text)
            keys = {k: base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            current = data["current"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"{source}: not a public key file ({exc})") from exc
        for kid, raw in keys.items():
            if len(raw) != 32 or key_id(raw) != kid:
                raise KeyringError(f"{source}: key {kid} is not a valid X25519 public key")
        if current not in keys:
            raise KeyringError(f"{source}: current key {current!r} is not in the file")
        return cls(current=current, keys=keys)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_public(keys_path: Path) -> PublicKeys:
    public_file = keys_path / "public.json"
    if not public_file.is_file():
        raise KeyringError(
            f"no public key at {public_file}: run 'portal keys generate' on the central side, "
            "or 'portal keys import-public FILE' on an edge"
        )
    return PublicKeys.from_json(public_file.read_text(), str(public_file))


def install_public(keys_path: Path, public: PublicKeys) -> None:
    keys_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_atomic(keys_path / "public.json", public.to_json().encode() + b"\n", 0o644)


def read_private(keys_path: Path) -> dict[str, PrivateKey]:
    folder = keys_path / "private"
    keys: dict[str, PrivateKey] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.key")):
            try:
                private = PrivateKey(base64.b64decode(path.read_text().strip(), validate=True))
            except (ValueError, TypeError) as exc:
                raise KeyringError(f"{path}: not a private key ({exc})") from exc
            kid = key_id(bytes(private.public_key))
            if kid != path.stem:
                raise KeyringError(f"{path}: file name does not match its key id {kid}")
            keys[kid] = private
    if not keys:
        raise KeyringError(
            f"no private key in {folder}: the central side needs one ('portal keys generate')"
        )
    return keys


def generate(keys_path: Path) -> str:
    """Add a new key pair and make it current; older keys stay so old envelopes still open."""
    private = PrivateKey.generate()
    public = bytes(private.public_key)
    kid = key_id(public)
    folder = keys_path / "private"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_atomic(folder / f"{kid}.key", base64.b64encode(bytes(private)) + b"\n", 0o600)
    try:
        existing = read_public(keys_path).keys
    except KeyringError:
        existing = {}
    install_public(keys_path, PublicKeys(current=kid, keys={**existing, kid: public}))
    return kid


def public_key(keys: PublicKeys) -> tuple[str, PublicKey]:
    return keys.current, PublicKey(keys.keys[keys.current])


def retire(keys_path: Path, kid: str) -> None:
    """Forget an old key pair: envelopes sealed with it can no longer be opened."""
    public = read_public(keys_path)
    if kid == public.current:
        raise KeyringError(f"{kid} is the current key; generate a new one first")
    private_file = keys_path / "private" / f"{kid}.key"
    if kid not in public.keys and not private_file.exists():
        raise KeyringError(f"no key {kid} in {keys_path}")
    remaining = {k: v for k, v in public.keys.items() if k != kid}
    install_public(keys_path, PublicKeys(current=public.current, keys=remaining))
    private_file.unlink(missing_ok=True)
