"""The sealed hand-over: edge outbox -> local spool -> central import -> status back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.app import create_app
from portal.assessment.models import Report
from portal.assessment.services import contact_email, set_status, ship_status_updates
from portal.db import db
from portal.forwarding.forwarder import apply_status_updates, forward_once, outbox_backlog
from portal.forwarding.importer import import_once
from portal.forwarding.keyring import generate, read_private, read_public
from portal.forwarding.models import OutboxEnvelope
from portal.forwarding.opening import PoisonEnvelope, open_envelope
from portal.forwarding.sealing import seal
from portal.forwarding.transport import LocalSpool, TransportError
from tests.conftest import csrf_token, make_settings, portal_cli, receipt_of, submit_report, tables_containing

MARKER = "UNIQUE-MARKER-7f3a9c"


def run_import(app):
    ext = app.extensions
    return import_once(ext["portal.transport"], ext["portal.private_keys"], ext["portal.contact_key"])


def status_of(client, receipt: str, lang: str = "en") -> str | None:
    token = csrf_token(client, f"/demo/{lang}/status")
    html = client.post(f"/demo/{lang}/status", data={"csrf_token": token, "receipt": receipt}).get_data(
        as_text=True
    )
    marker = 'data-status="'
    return html.split(marker, 1)[1].split('"', 1)[0] if marker in html else None


def all_bytes_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())


def test_report_reaches_the_central_database_once_and_status_comes_back(app, client, settings):
    receipt = receipt_of(submit_report(
        client, urls=f"http://{MARKER.lower()}.example.test/a\nsite.example.test/b",
        description=MARKER, contact_email="reporter@mail.example", child_in_danger="y",
    ))
    transport = app.extensions["portal.transport"]
    assert outbox_backlog()[0] == 1

    # Before forwarding and after it, the edge holds only ciphertext: no marker anywhere.
    assert MARKER.encode() not in all_bytes_under(settings.instance_path)
    assert tables_containing(MARKER) == []
    sent = forward_once(transport)
    assert (sent.sent, sent.failed) == (1, 0)
    assert outbox_backlog() == (0, None)
    db.session.commit()
    assert MARKER.encode() not in all_bytes_under(settings.spool_path)
    assert tables_containing(MARKER) == []
    if db.engine.dialect.name == "sqlite":  # the file itself too, free pages and WAL included
        db_file = settings.instance_path / "portal.db"
        wal = Path(str(db_file) + "-wal")
        assert MARKER.encode() not in db_file.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    result = run_import(app)
    assert (result.imported, result.duplicates, result.dead) == (1, 0, 0)
    report = db.session.scalars(select(Report)).one()
    assert report.description == MARKER
    assert report.urgent is True and report.portal == "demo" and report.lang == "en"
    assert [u.url for u in report.urls] == [
        f"http://{MARKER.lower()}.example.test/a", "http://site.example.test/b"
    ]
    assert report.contact_sealed is not None and b"reporter" not in report.contact_sealed
    assert contact_email(report, app.extensions["portal.contact_key"]) == "reporter@mail.example"
    assert transport.backlog() == 0

    assert status_of(client, receipt) == "received"
    set_status(report, "action_taken")
    db.session.commit()
    assert ship_status_updates(transport) == 1
    assert apply_status_updates(transport) == 1
    assert status_of(client, receipt) == "action_taken"
    assert status_of(client, receipt, lang="sw") == "action_taken"


def test_redelivery_and_duplicates_store_one_report(app, client):
    submit_report(client)
    transport = app.extensions["portal.transport"]
    body = db.session.scalars(select(OutboxEnvelope)).one().body
    envelope_id = json.loads(body)["id"]
    forward_once(transport)
    transport.send_envelope(envelope_id, body)  # the forwarder retried after a lost ack
    assert run_import(app).imported == 1
    transport.send_envelope(envelope_id, body)  # redelivered after the import
    result = run_import(app)
    assert (result.imported, result.duplicates) == (0, 1)
    assert db.session.query(Report).count() == 1


def test_poison_envelopes_go_to_dead_letters_and_do_not_block(app, client, settings):
    transport = app.extensions["portal.transport"]
    transport.send_envelope("00000000-0000-0000-0000-000000000001", b"not json at all")
    public = read_public(settings.keys_path)
    from nacl.public import PublicKey

    wrong_payload = seal("00000000-0000-0000-0000-000000000002", {"portal": "demo"},
                         public.current, PublicKey(public.keys[public.current]))
    transport.send_envelope("00000000-0000-0000-0000-000000000002", wrong_payload)
    submit_report(client)
    forward_once(transport)
    result = run_import(app)
    assert (result.imported, result.dead) == (1, 2)
    reasons = sorted(p.read_text() for p in (settings.spool_path / "dead").glob("*-reason"))
    assert len(reasons) == 2
    assert any("outer layer unreadable" in r for r in reasons)
    assert any("payload field" in r for r in reasons)
    assert transport.backlog() == 0


def test_transport_failure_keeps_the_envelope_with_backoff(app, client, settings):
    submit_report(client)
    spool = settings.spool_path / "envelopes"
    spool.chmod(0o500)  # the transport refuses writes for a while
    try:
        if os.geteuid() == 0:  # root ignores permissions: use a transport that cannot write
            transport = LocalSpool(settings.spool_path)
            transport.envelopes = settings.spool_path / "missing" / "nowhere"
        else:
            transport = app.extensions["portal.transport"]
        result = forward_once(transport)
    finally:
        spool.chmod(0o700)
    assert (result.sent, result.failed) == (0, 1)
    entry = db.session.scalars(select(OutboxEnvelope)).one()
    assert entry.attempts == 1 and entry.last_error
    assert entry.next_attempt_at > entry.created_at
    # Not due yet: nothing is tried; once due, it goes.
    assert forward_once(app.extensions["portal.transport"]).sent == 0
    result = forward_once(app.extensions["portal.transport"], now=entry.next_attempt_at)
    assert result.sent == 1
    assert run_import(app).imported == 1


def test_old_keys_still_open_after_rotation(app, client, settings):
    submit_report(client)
    forward_once(app.extensions["portal.transport"])
    old = read_public(settings.keys_path).current
    new = generate(settings.keys_path)
    assert new != old and read_public(settings.keys_path).current == new
    # The edge picks the new key up without a restart.
    submit_report(client)
    bodies = [json.loads(e.body)["kid"] for e in db.session.scalars(select(OutboxEnvelope))]
    assert bodies == [new]
    forward_once(app.extensions["portal.transport"])
    app.extensions["portal.private_keys"] = read_private(settings.keys_path)
    assert run_import(app).imported == 2


def test_open_envelope_rejects_tampering(settings):
    from nacl.public import PublicKey

    public = read_public(settings.keys_path)
    body = seal("00000000-0000-0000-0000-0000000000aa", {"x": 1}, public.current,
                PublicKey(public.keys[public.current]))
    private = read_private(settings.keys_path)
    assert open_envelope(body, private)["x"] == 1
    outer = json.loads(body)
    outer["id"] = "00000000-0000-0000-0000-0000000000bb"
    with pytest.raises(PoisonEnvelope, match="inner id"):
        open_envelope(json.dumps(outer).encode(), private)
    outer = json.loads(body)
    outer["sealed"] = outer["sealed"][:-8] + "AAAAAAA="
    with pytest.raises(PoisonEnvelope, match="cannot open"):
        open_envelope(json.dumps(outer).encode(), private)


def test_edge_only_process_cannot_open_and_needs_a_public_key(tmp_path):
    central = tmp_path / "central"
    generate(central / "keys")
    edge = tmp_path / "edge"
    exported = read_public(central / "keys").to_json()
    env = {"PORTAL_ROLES": "edge", "PORTAL_KEYS_PATH": str(edge / "keys")}
    with pytest.raises(Exception, match="edge role: no public key"):
        create_app(make_settings(edge, env=env))
    (edge / "keys").mkdir(parents=True)
    (edge / "keys" / "public.json").write_text(exported)
    app = create_app(make_settings(edge, env=env))
    assert "portal.private_keys" not in app.extensions
    assert not (edge / "keys" / "private").exists()
    with pytest.raises(Exception, match="central role: no private key"):
        create_app(make_settings(edge, env={"PORTAL_KEYS_PATH": str(edge / "keys")}))


def test_spool_write_is_atomic_and_refuses_odd_names(tmp_path):
    spool = LocalSpool(tmp_path / "spool")
    with pytest.raises(ValueError):
        spool.send_envelope("../../etc/passwd", b"x")
    spool.send_envelope("12345678-aaaa-bbbb-cccc-1234567890ab", b"data")
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []
    assert spool.backlog() == 1
    broken = LocalSpool(tmp_path / "spool2")
    broken.tmp = tmp_path / "missing"
    with pytest.raises(TransportError):
        broken.send_envelope("12345678-aaaa-bbbb-cccc-1234567890ab", b"data")


def test_cli_forward_and_import_once(app, client, settings):
    for _ in range(3):
        submit_report(client)
    db.session.commit()
    forwarded = portal_cli(settings.instance_path, "forward", "--once")
    assert forwarded.returncode == 0, forwarded.stderr
    assert "forwarded 3, failed 0" in forwarded.stdout
    imported = portal_cli(settings.instance_path, "import", "--once")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().splitlines()[-1] == "imported 3"
    again = portal_cli(settings.instance_path, "import", "--once")
    assert again.stdout.strip().splitlines()[-1] == "imported 0"
    listed = portal_cli(settings.instance_path, "reports", "list")
    assert listed.stdout.count("demo\ten\t") == 3


def test_cli_keys_export_and_import_public(tmp_path):
    central, edge = tmp_path / "central", tmp_path / "edge"
    generated = portal_cli(central, "keys", "generate")
    assert generated.returncode == 0 and "new status-signing key" in generated.stdout
    exported = portal_cli(central, "keys", "export-public")
    assert exported.returncode == 0 and '"current"' in exported.stdout
    assert len(json.loads(exported.stdout)["status_verify"]) == 1
    assert "PRIVATE" not in exported.stdout.upper()
    key_file = tmp_path / "public.json"
    key_file.write_text(exported.stdout)
    installed = portal_cli(edge, "keys", "import-public", str(key_file))
    assert installed.returncode == 0, installed.stderr
    assert "installed 1 status verify key(s)" in installed.stdout
    assert read_public(edge / "keys").to_json() == read_public(central / "keys").to_json()
    # The edge holds no private key of either kind: no sealing key, no signing key.
    assert sorted(p.name for p in (edge / "keys").iterdir()) == ["public.json"]
    assert (central / "keys" / "signing").is_dir() and (central / "keys" / "private").is_dir()
    # From standard input too.
    piped = subprocess.run([sys.executable, "-m", "portal.cli", "keys", "import-public", "-"],
                           input=exported.stdout, capture_output=True, text=True, timeout=180,
                           env={**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "edge2"),
                                "PORTAL_SECRET_KEY": "x" * 40}, check=False)
    assert piped.returncode == 0, piped.stderr
    assert read_public(tmp_path / "edge2" / "keys").verify == read_public(central / "keys").verify
    # A file from before status updates were signed still imports, with a loud warning.
    old = json.loads(exported.stdout)
    del old["status_verify"]
    key_file.write_text(json.dumps(old))
    installed = portal_cli(edge, "keys", "import-public", str(key_file))
    assert installed.returncode == 0, installed.stderr
    assert "no status verify key" in installed.stderr and "drop every status update" in installed.stderr
    assert read_public(edge / "keys").verify == {}
    key_file.write_text('{"current": "x", "keys": {}}')
    refused = portal_cli(edge, "keys", "import-public", str(key_file))
    assert refused.returncode != 0 and "current key" in refused.stderr


def test_cli_outbox_shows_the_backlog(app, client, settings):
    submit_report(client)
    db.session.commit()
    shown = portal_cli(settings.instance_path, "outbox")
    assert shown.returncode == 0, shown.stderr
    assert "outbox_envelopes: 1" in shown.stdout
    assert "outbox_stuck: False" in shown.stdout


def test_cli_keys_rotate_list_and_retire(tmp_path):
    central = tmp_path / "central"
    portal_cli(central, "keys", "generate")
    old = read_public(central / "keys").current
    portal_cli(central, "keys", "generate")
    new = read_public(central / "keys").current
    listed = portal_cli(central, "keys", "list").stdout
    assert f"{old}\told, private key here" in listed and f"{new}\tcurrent" in listed
    refused = portal_cli(central, "keys", "retire", new)
    assert refused.returncode != 0 and "is the current key" in refused.stderr
    assert portal_cli(central, "keys", "retire", old).returncode == 0
    assert set(read_private(central / "keys")) == {new}
    assert set(read_public(central / "keys").keys) == {new}
    # Each generate also made a status-signing key; the old one is retired the same way.
    old_signing, new_signing = sorted(read_public(central / "keys").verify,
                                      key=lambda k: (central / "keys" / "signing" / f"{k}.key")
                                      .stat().st_mtime_ns)
    assert f"{old_signing}\tstatus signing, private key here" in listed
    assert portal_cli(central, "keys", "retire", old_signing).returncode == 0
    assert set(read_public(central / "keys").verify) == {new_signing}
    assert [p.stem for p in (central / "keys" / "signing").iterdir()] == [new_signing]
    refused = portal_cli(central, "keys", "retire", new_signing)
    assert refused.returncode != 0 and "only status-signing key" in refused.stderr
