"""The keyring on disk: public keys for sealing, private keys (central only) for opening,
and the verify keys of the centre's signed status updates.

Layout of ``PORTAL_KEYS_PATH``::

    public.json          {"current": KID, "keys": {KID: base64 X25519 public key, ...},
                          "status_verify": {KID: base64 Ed25519 verify key, ...}}
    private/KID.key      base64 X25519 private key, mode 0600 (central side only)
    signing/KID.key      base64 Ed25519 signing key, mode 0600 (central side only; written and
                         read by :mod:`portal.forwarding.status_signer`, never by this module)

A key id (KID) is the first 16 hex digits of the SHA-256 of the public key, so an edge and
the central side agree on it without coordination. A public key file from before status
updates were signed has no ``status_verify``: it still imports, and an edge holding it drops
every status update (see :mod:`portal.forwarding.status_verifier`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from nacl.public import PrivateKey, PublicKey


class KeyringError(Exception):
    pass


SIGNING_FOLDER = "signing"


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def _b64_keys(keys: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in keys.items()}


def _raw_keys(data: object) -> dict[str, bytes]:
    if not isinstance(data, dict):
        raise TypeError("keys are not a mapping")
    return {str(k): base64.b64decode(v, validate=True) for k, v in data.items()}


@dataclass(frozen=True)
class PublicKeys:
    current: str
    keys: dict[str, bytes]
    # Ed25519 keys the centre signs status updates with; an edge accepts a signature by any.
    verify: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "current": self.current,
                "keys": _b64_keys(self.keys),
                "status_verify": _b64_keys(self.verify),
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str) -> PublicKeys:
        try:
            data = json.loads(text)
            keys = _raw_keys(data["keys"])
            current = data["current"]
            verify = _raw_keys(data.get("status_verify", {}))  # absent in older files
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"{source}: not a public key file ({exc})") from exc
        for kinds, name in ((keys, "X25519 public key"), (verify, "Ed25519 verify key")):
            for kid, raw in kinds.items():
                if len(raw) != 32 or key_id(raw) != kid:
                    raise KeyringError(f"{source}: key {kid} is not a valid {name}")
        if current not in keys:
            raise KeyringError(f"{source}: current key {current!r} is not in the file")
        return cls(current=current, keys=keys, verify=verify)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
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
    write_atomic(keys_path / "public.json", public.to_json().encode() + b"\n", 0o644)


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
    write_atomic(folder / f"{kid}.key", base64.b64encode(bytes(private)) + b"\n", 0o600)
    try:
        existing = read_public(keys_path)
    except KeyringError:
        existing = PublicKeys(current=kid, keys={})
    install_public(keys_path, replace(existing, current=kid, keys={**existing.keys, kid: public}))
    return kid


def public_key(keys: PublicKeys) -> tuple[str, PublicKey]:
    return keys.current, PublicKey(keys.keys[keys.current])


def retire(keys_path: Path, kid: str) -> None:
    """Forget an old key pair: envelopes sealed with it can no longer be opened, or status
    updates signed with it verified once the edges have the new public key file."""
    public = read_public(keys_path)
    signing_file = keys_path / SIGNING_FOLDER / f"{kid}.key"
    if kid in public.verify or signing_file.exists():
        others = [p for p in (keys_path / SIGNING_FOLDER).glob("*.key") if p != signing_file]
        if not others:
            raise KeyringError(f"{kid} is the only status-signing key; generate a new one first")
        remaining = {k: v for k, v in public.verify.items() if k != kid}
        install_public(keys_path, replace(public, verify=remaining))
        signing_file.unlink(missing_ok=True)
        return
    if kid == public.current:
        raise KeyringError(f"{kid} is the current key; generate a new one first")
    private_file = keys_path / "private" / f"{kid}.key"
    if kid not in public.keys and not private_file.exists():
        raise KeyringError(f"no key {kid} in {keys_path}")
    remaining = {k: v for k, v in public.keys.items() if k != kid}
    install_public(keys_path, replace(public, keys=remaining))
    private_file.unlink(missing_ok=True)
