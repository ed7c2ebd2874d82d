"""Signed status updates (issue 14): the centre signs each update with an Ed25519 key of its
keyring, and an edge holding only verify keys applies an update only when it verifies.

An edge and a central deployment run apart here, each with its own instance folder, database
and keyring, sharing only the local spool."""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from sqlalchemy import select

from portal.app import create_app
from portal.assessment.models import Report
from portal.assessment.services import set_status, ship_status_updates
from portal.db import db, utcnow
from portal.forwarding.forwarder import apply_status_updates, forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.keyring import (
    KeyringError,
    PublicKeys,
    generate,
    install_public,
    key_id,
    read_public,
    retire,
)
from portal.forwarding.status_signer import (
    StatusSigner,
    ensure_signing_keys,
    generate_signing_key,
    read_signing_keys,
)
from portal.forwarding.status_verifier import NO_VERIFY_KEY
from portal.reporting.receipts import receipt_hash
from tests.conftest import make_settings, receipt_of, submit_report
from tests.test_forwarding import status_of


@pytest.fixture
def forwarding_log():
    """Every record of the portal.forwarding loggers (the portal logger does not propagate)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("portal.forwarding")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@dataclass
class Pair:
    root: Path
    central: object
    edge: object

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def status_files(self) -> list[Path]:
        return sorted((self.spool / "status").iterdir())

    def dead_reasons(self) -> list[str]:
        return sorted(p.read_text() for p in (self.spool / "dead").glob("*-reason"))


def deploy(root: Path, name: str, roles: str):
    env = {"PORTAL_ROLES": roles, "PORTAL_KEYS_PATH": str(root / name / "keys"),
           "PORTAL_SPOOL_PATH": str(root / "spool")}
    app = create_app(make_settings(root / name, env=env))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def pair(tmp_path) -> Pair:
    central_keys = tmp_path / "central" / "keys"
    generate(central_keys)
    generate_signing_key(central_keys)
    install_public(tmp_path / "edge" / "keys", read_public(central_keys))
    return Pair(tmp_path, deploy(tmp_path, "central", "central"), deploy(tmp_path, "edge", "edge"))


def report_through(pair: Pair) -> tuple[str, str]:
    """A report made at the edge and imported centrally: its receipt and the receipt's hash."""
    with pair.edge.app_context():
        receipt = receipt_of(submit_report(pair.edge.test_client()))
        assert forward_once(pair.edge.extensions["portal.transport"]).sent == 1
        hashed = receipt_hash(receipt, pair.edge.extensions["portal.reporting"]["receipt_key"])
    with pair.central.app_context():
        ext = pair.central.extensions
        assert import_once(ext["portal.transport"], ext["portal.private_keys"],
                           ext["portal.contact_key"]).imported == 1
    return receipt, hashed


def centre_sets(pair: Pair, status: str) -> bytes:
    """The centre changes the report's status and ships it; the bytes that went out."""
    with pair.central.app_context():
        set_status(db.session.scalars(select(Report)).one(), status)
        db.session.commit()
        before = set(pair.status_files())
        assert ship_status_updates(pair.central.extensions["portal.transport"]) == 1
    (sent,) = set(pair.status_files()) - before
    return sent.read_bytes()


def edge_applies(pair: Pair) -> int:
    with pair.edge.app_context():
        return apply_status_updates(pair.edge.extensions["portal.transport"])


def edge_status(pair: Pair, receipt: str) -> str | None:
    with pair.edge.app_context():
        return status_of(pair.edge.test_client(), receipt)


def inject(pair: Pair, data: bytes) -> None:
    """Someone able to write to the status queue puts a message there."""
    with pair.edge.app_context():
        pair.edge.extensions["portal.transport"].send_status(data)


def body(hashed: str, status: str, at=None, signed_at=None) -> bytes:
    now = utcnow()
    return json.dumps({"receipt_hash": hashed, "status": status,
                       "at": (at or now).isoformat(),
                       "signed_at": (signed_at or now).isoformat()}).encode()


def centre_signer(pair: Pair) -> StatusSigner:
    return pair.central.extensions["portal.status_signer"]


def test_centre_signs_and_edge_applies_over_the_local_spool(pair):
    receipt, hashed = report_through(pair)
    assert edge_status(pair, receipt) == "received"
    sent = centre_sets(pair, "in_assessment")
    envelope = json.loads(sent)
    assert set(envelope) == {"v", "msg", "sigs"}
    (kid,) = envelope["sigs"]
    assert kid in read_public(pair.root / "edge" / "keys").verify
    message = json.loads(base64.b64decode(envelope["msg"]))
    assert set(message) == {"receipt_hash", "status", "at", "signed_at"}
    assert (message["receipt_hash"], message["status"]) == (hashed, "in_assessment")
    assert edge_applies(pair) == 1
    assert edge_status(pair, receipt) == "in_assessment"
    assert pair.status_files() == [] and pair.dead_reasons() == []
    # The edge holds verify keys only; the centre's private halves stay central.
    edge_keys = pair.root / "edge" / "keys"
    assert sorted(p.name for p in edge_keys.iterdir()) == ["public.json"]


def other_key() -> tuple[str, SigningKey]:
    key = SigningKey.generate()
    return key_id(bytes(key.verify_key)), key


def unsigned(pair, hashed, good):
    return body(hashed, "closed")


def signed_by_another_key(pair, hashed, good):
    return StatusSigner(dict([other_key()])).sign(body(hashed, "closed"))


def another_key_under_our_key_id(pair, hashed, good):
    (kid,) = centre_signer(pair).keys
    return StatusSigner({kid: other_key()[1]}).sign(body(hashed, "closed"))


def tampered_message(pair, hashed, good):
    envelope = json.loads(good)
    message = json.loads(base64.b64decode(envelope["msg"]))
    message["status"] = "closed"
    envelope["msg"] = base64.b64encode(json.dumps(message).encode()).decode()
    return json.dumps(envelope).encode()


def tampered_signature(pair, hashed, good):
    envelope = json.loads(good)
    (kid,) = envelope["sigs"]
    raw = bytearray(base64.b64decode(envelope["sigs"][kid]))
    raw[0] ^= 1
    envelope["sigs"][kid] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(envelope).encode()


def signed_long_ago(pair, hashed, good):
    old = utcnow() - timedelta(days=15)
    return centre_signer(pair).sign(body(hashed, "closed", at=utcnow(), signed_at=old))


def signed_but_malformed(pair, hashed, good):
    return centre_signer(pair).sign(json.dumps({"receipt_hash": hashed, "status": "gone",
                                                "at": "soon", "signed_at": "now"}).encode())


def not_json(pair, hashed, good):
    return b"\x00\xff not json"


def oversized(pair, hashed, good):
    envelope = json.loads(good)
    envelope["pad"] = "x" * 5000
    return json.dumps(envelope).encode()


def unknown_version(pair, hashed, good):
    return json.dumps({**json.loads(good), "v": 2}).encode()


@pytest.mark.parametrize("make, reason", [
    (unsigned, "unsigned or malformed"),
    (signed_by_another_key, "signed by no verify key installed here"),
    (another_key_under_our_key_id, "does not verify"),
    (tampered_message, "does not verify"),
    (tampered_signature, "does not verify"),
    (signed_long_ago, "signed too long ago"),
    (signed_but_malformed, "signed but malformed"),
    (not_json, "unsigned or malformed"),
    (oversized, "larger than the limit"),
    (unknown_version, "unknown version"),
])
def test_bad_update_is_dropped_and_the_next_good_one_applies(pair, forwarding_log, make, reason):
    receipt, hashed = report_through(pair)
    good = centre_sets(pair, "in_assessment")
    assert edge_applies(pair) == 1
    bad = make(pair, hashed, good)
    inject(pair, bad)
    assert edge_applies(pair) == 0
    assert edge_status(pair, receipt) == "in_assessment"  # not "closed"
    # Taken off the queue (kept in the spool's dead letters with the reason), not retried.
    assert pair.status_files() == []
    (kept,) = pair.dead_reasons()
    assert kept.startswith("status update dropped:") and reason in kept
    dropped = [r for r in forwarding_log if r.getMessage().startswith("status update ")]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING
    assert reason in dropped[0].getMessage() and hashed not in dropped[0].getMessage()
    # The queue still flows: the centre's next update is applied.
    centre_sets(pair, "action_taken")
    assert edge_applies(pair) == 1
    assert edge_status(pair, receipt) == "action_taken"


def test_a_replayed_older_update_does_not_move_the_status_back(pair):
    receipt, _ = report_through(pair)
    first = centre_sets(pair, "in_assessment")
    assert edge_applies(pair) == 1
    centre_sets(pair, "action_taken")
    assert edge_applies(pair) == 1
    inject(pair, first)  # genuinely signed, but older than what the edge has
    assert edge_applies(pair) == 0
    assert edge_status(pair, receipt) == "action_taken"
    assert pair.status_files() == [] and pair.dead_reasons() == []


def test_rotation_edge_accepts_any_installed_key(pair):
    receipt, hashed = report_through(pair)
    central_keys, edge_keys = pair.root / "central" / "keys", pair.root / "edge" / "keys"
    (old,) = read_signing_keys(central_keys)
    new = generate_signing_key(central_keys)
    # The centre signs with both while the edges catch up: an edge knowing only the old one
    # ignores the signature it cannot check and applies the update.
    pair.central.extensions["portal.status_signer"] = StatusSigner(read_signing_keys(central_keys))
    assert set(json.loads(centre_sets(pair, "in_assessment"))["sigs"]) == {old, new}
    assert edge_applies(pair) == 1
    # The edge imports the new file (no restart). Now it knows both keys, each signature by
    # either must verify: one good and one forged is refused.
    install_public(edge_keys, read_public(central_keys))
    mixed = json.loads(centre_signer(pair).sign(body(hashed, "closed")))
    mixed["sigs"][new] = json.loads(StatusSigner({new: SigningKey.generate()}).sign(
        body(hashed, "closed")))["sigs"][new]
    inject(pair, json.dumps(mixed).encode())
    assert edge_applies(pair) == 0 and edge_status(pair, receipt) == "in_assessment"
    # The centre retires the old key once every edge has the new file.
    retire(central_keys, old)
    assert set(read_public(central_keys).verify) == {new}
    pair.central.extensions["portal.status_signer"] = StatusSigner(read_signing_keys(central_keys))
    assert set(json.loads(centre_sets(pair, "action_taken"))["sigs"]) == {new}
    assert edge_applies(pair) == 1
    assert edge_status(pair, receipt) == "action_taken"
    # Once the edge has the file without the old key, an update signed with it is dropped.
    install_public(edge_keys, read_public(central_keys))
    inject(pair, StatusSigner({old: SigningKey.generate()}).sign(body(hashed, "closed")))
    assert edge_applies(pair) == 0 and edge_status(pair, receipt) == "action_taken"
    with pytest.raises(KeyringError, match="only status-signing key"):
        retire(central_keys, new)


def test_edge_with_an_old_public_key_file_drops_every_update_and_says_so(tmp_path, forwarding_log):
    central_keys = tmp_path / "central" / "keys"
    generate(central_keys)
    public = read_public(central_keys)
    # A file exported before updates were signed: no "status_verify" at all.
    old_file = json.dumps({"current": public.current,
                           "keys": {k: base64.b64encode(v).decode() for k, v in public.keys.items()}})
    (tmp_path / "edge" / "keys").mkdir(parents=True)
    (tmp_path / "edge" / "keys" / "public.json").write_text(old_file)
    central = deploy(tmp_path, "central", "central")  # makes its signing key: none was there
    assert len(read_signing_keys(central_keys)) == 1
    assert read_public(central_keys).verify
    edge = deploy(tmp_path, "edge", "edge")
    assert [r.levelno for r in forwarding_log if r.getMessage() == NO_VERIFY_KEY] == [logging.ERROR]
    pair = Pair(tmp_path, central, edge)
    ready = edge.test_client().get("/readyz")
    assert ready.status_code == 200  # reports are still taken
    assert ready.get_json()["warnings"] == [
        "no status verify key: status updates from the centre are dropped"]
    receipt, _ = report_through(pair)
    centre_sets(pair, "in_assessment")
    assert edge_applies(pair) == 0
    assert edge_status(pair, receipt) == "received"
    assert pair.status_files() == []  # dropped, not left to loop
    assert len([r for r in forwarding_log if r.getMessage() == NO_VERIFY_KEY]) == 2
    # Importing the current file fixes it without a restart.
    install_public(tmp_path / "edge" / "keys", read_public(central_keys))
    assert "warnings" not in edge.test_client().get("/readyz").get_json()
    centre_sets(pair, "action_taken")
    assert edge_applies(pair) == 1
    assert edge_status(pair, receipt) == "action_taken"


def test_workers_starting_at_once_make_one_signing_key(tmp_path):
    keys = tmp_path / "keys"
    generate(keys)  # a keyring from before updates were signed
    start = threading.Barrier(6)
    found: list[set[str]] = []

    def worker() -> None:
        start.wait()
        found.append(set(ensure_signing_keys(keys)))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 6 and len({frozenset(s) for s in found}) == 1
    (kid,) = found[0]
    assert sorted(p.name for p in (keys / "signing").iterdir()) == [f"{kid}.key"]
    assert set(read_public(keys).verify) == {kid}
    assert (keys / "signing" / f"{kid}.key").stat().st_mode & 0o777 == 0o600


def test_public_key_file_refuses_a_bad_verify_key(tmp_path):
    keys = tmp_path / "keys"
    generate(keys)
    generate_signing_key(keys)
    public = read_public(keys)
    (kid,) = public.verify
    broken = replace(public, verify={kid: b"\x01" * 32})
    with pytest.raises(KeyringError, match=f"key {kid} is not a valid Ed25519 verify key"):
        PublicKeys.from_json(broken.to_json(), "test")
