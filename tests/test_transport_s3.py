"""Forwarding over S3 + SQS against a real S3/SQS-compatible server on loopback, with the
edge and the central back office as two separate deployments, proven under faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from sqlalchemy import func, select

from portal.app import create_app
from portal.assessment.models import Report
from portal.assessment.services import set_status, ship_status_updates
from portal.db import db
from portal.forwarding.aws import S3SqsTransport
from portal.forwarding.forwarder import apply_status_updates, forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.keyring import generate, key_id, read_public
from portal.forwarding.models import OutboxEnvelope
from portal.forwarding.status_signer import StatusSigner, generate_signing_key
from portal.reporting.receipts import receipt_hash
from portal.settings import SettingsError
from tests.aws import CREDENTIALS, create_resources
from tests.conftest import SECRET, database_env, make_settings, receipt_of, submit_report, tables_containing
from tests.test_forwarding import status_of

MARKER = "S3-UNIQUE-MARKER-5d1e"


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    resources = create_resources(moto_endpoint)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    return resources


class Deployment:
    """One process's app (edge or central) with its own instance folder and database."""

    def __init__(self, instance: Path, roles: str, aws, keys: Path):
        self.instance = instance
        env = {**aws.env(), "PORTAL_ROLES": roles, "PORTAL_KEYS_PATH": str(keys)}
        self.env = env
        self.app = create_app(make_settings(instance, env=env))
        self.app.config["TESTING"] = True

    @property
    def transport(self) -> S3SqsTransport:
        return self.app.extensions["portal.transport"]

    def ctx(self):
        return self.app.app_context()


@pytest.fixture
def pair(tmp_path, aws):
    """A central deployment holding the private key and an edge holding only the public one."""
    central_keys = tmp_path / "central" / "keys"
    generate(central_keys)
    generate_signing_key(central_keys)
    edge_keys = tmp_path / "edge" / "keys"
    edge_keys.mkdir(parents=True)
    (edge_keys / "public.json").write_text(read_public(central_keys).to_json())
    central = Deployment(tmp_path / "central", "central", aws, central_keys)
    edge = Deployment(tmp_path / "edge", "edge", aws, edge_keys)
    return edge, central


def report_many(edge: Deployment, count: int, **fields) -> list[str]:
    client = edge.app.test_client()
    receipts = []
    with edge.ctx():
        for i in range(count):
            response = submit_report(client, description=f"{MARKER} {i}",
                                     urls=f"site{i}.example.test/{MARKER.lower()}", **fields)
            receipts.append(receipt_of(response))
    return receipts


def central_import(central: Deployment):
    ext = central.app.extensions
    with central.ctx():
        return import_once(central.transport, ext["portal.private_keys"], ext["portal.contact_key"])


def central_counts(central: Deployment) -> tuple[int, int]:
    with central.ctx():
        total = db.session.scalar(select(func.count(Report.id)))
        distinct = db.session.scalar(select(func.count(func.distinct(Report.receipt_hash))))
        return total, distinct


def assert_each_receipt_once(edge: Deployment, central: Deployment, receipts: list[str]) -> None:
    """Every receipt shown to a citizen is in the central database exactly once."""
    key = edge.app.extensions["portal.reporting"]["receipt_key"]
    expected = sorted(receipt_hash(r, key) for r in receipts)
    with central.ctx():
        stored = sorted(db.session.scalars(select(Report.receipt_hash)))
    assert stored == expected


def assert_nothing_readable_left(edge: Deployment, aws) -> None:
    """Grep the edge's database, spool and every stored object for the marker."""
    marker = MARKER.encode()
    for path in edge.instance.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path
    with edge.ctx():  # the database through its own engine: on PostgreSQL it has no file here
        assert tables_containing(MARKER) == []
    for key, body in aws.objects().items():
        assert marker not in body, key


def test_roles_fail_at_start_with_a_clear_message(tmp_path, aws):
    keys = tmp_path / "keys"
    generate(keys)
    bad = {**aws.env(), "PORTAL_S3_BUCKET": "no-such-bucket", "PORTAL_KEYS_PATH": str(keys)}
    with pytest.raises(SettingsError, match=r"PORTAL_S3_BUCKET: bucket 'no-such-bucket' not usable"):
        create_app(make_settings(tmp_path / "a", env=bad))
    bad = {**aws.env(), "PORTAL_SQS_QUEUE_URL": aws.queue_url + "-missing",
           "PORTAL_KEYS_PATH": str(keys)}
    with pytest.raises(SettingsError, match=r"PORTAL_SQS_QUEUE_URL: queue .* not usable"):
        create_app(make_settings(tmp_path / "b", env=bad))
    edge_keys = tmp_path / "edge-keys"
    edge_keys.mkdir()
    (edge_keys / "public.json").write_text(read_public(keys).to_json())
    with pytest.raises(SettingsError, match="central role: no private key"):
        create_app(make_settings(tmp_path / "c", env={**aws.env(), "PORTAL_ROLES": "central",
                                                       "PORTAL_KEYS_PATH": str(edge_keys)}))


def test_round_trip_between_separate_deployments(pair, aws):
    edge, central = pair
    receipts = report_many(edge, 3, child_in_danger="y")
    with edge.ctx():
        assert forward_once(edge.transport).sent == 3
        assert db.session.query(OutboxEnvelope).count() == 0
    keys = sorted(aws.objects())
    assert len(keys) == 3 and all(k.startswith("envelopes/") for k in keys)
    assert_nothing_readable_left(edge, aws)
    result = central_import(central)
    assert (result.imported, result.dead) == (3, 0)
    assert aws.objects() == {}  # imported envelopes are deleted from the bucket
    assert_each_receipt_once(edge, central, receipts)
    with central.ctx():
        for report in db.session.scalars(select(Report)):
            assert report.urgent and MARKER in report.description
            set_status(report, "in_assessment")
        db.session.commit()
        assert ship_status_updates(central.transport) == 3
    with edge.ctx():
        assert apply_status_updates(edge.transport) == 3
        client = edge.app.test_client()
        assert {status_of(client, r) for r in receipts} == {"in_assessment"}


def status_queue_size(aws) -> int:
    """Messages in the status queue, visible or taken and not yet deleted."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.status_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_unsigned_and_forged_status_updates_are_dropped_from_the_queue(pair, aws):
    from nacl.signing import SigningKey

    edge, central = pair
    (receipt,) = report_many(edge, 1)
    with edge.ctx():
        forward_once(edge.transport)
        hashed = receipt_hash(receipt, edge.app.extensions["portal.reporting"]["receipt_key"])
    assert central_import(central).imported == 1
    closed = json.dumps({"receipt_hash": hashed, "status": "closed", "at": "2030-01-01T00:00:00+00:00",
                         "signed_at": "2030-01-01T00:00:00+00:00"}).encode()
    forger = SigningKey.generate()
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.status_queue_url, MessageBody=closed.decode())  # unsigned
    sqs.send_message(QueueUrl=aws.status_queue_url, MessageBody=StatusSigner(
        {key_id(bytes(forger.verify_key)): forger}).sign(closed).decode())
    with central.ctx():
        set_status(db.session.scalars(select(Report)).one(), "in_assessment")
        db.session.commit()
        assert ship_status_updates(central.transport) == 1
    assert status_queue_size(aws) == 3
    with edge.ctx():
        applied = 0
        for _ in range(3):  # SQS hands out at most a batch per receive, in no set order
            applied += apply_status_updates(edge.transport)
            if status_queue_size(aws) == 0:
                break
        assert applied == 1
        assert status_of(edge.app.test_client(), receipt) == "in_assessment"
    # Deleted, not merely hidden until the visibility timeout brings them back.
    assert status_queue_size(aws) == 0


def test_put_requests_server_side_encryption(pair, aws):
    edge, _ = pair
    report_many(edge, 1)
    with edge.ctx():
        forward_once(edge.transport)
    s3 = aws.client("s3")
    (key,) = aws.objects()
    assert s3.head_object(Bucket=aws.bucket, Key=key)["ServerSideEncryption"] == "aws:kms"


def test_transport_unreachable_for_a_while_then_back(pair, aws, tmp_path):
    edge, central = pair
    receipts = report_many(edge, 4)
    # The same transport, its endpoint a closed port on loopback: S3 cannot be reached.
    down = S3SqsTransport(aws.bucket, aws.queue_url, aws.status_queue_url, wait_seconds=1)
    down.s3 = boto3.session.Session().client("s3", endpoint_url="http://127.0.0.1:9",
                                             region_name="us-east-1")
    with edge.ctx():
        result = forward_once(down)
        assert (result.sent, result.failed) == (0, 4)
        entries = db.session.scalars(select(OutboxEnvelope)).all()
        assert all(e.attempts == 1 and e.last_error for e in entries)
        # Back again: once due, everything goes.
        due = max(e.next_attempt_at for e in entries)
        assert forward_once(edge.transport, now=due).sent == 4
    assert central_import(central).imported == 4
    assert_each_receipt_once(edge, central, receipts)
    assert_nothing_readable_left(edge, aws)


def run_portal(deployment: Deployment, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **deployment.env, "PORTAL_INSTANCE_PATH": str(deployment.instance),
           **database_env(deployment.instance), "PORTAL_SECRET_KEY": SECRET,
           "PORTAL_RATELIMIT_ENABLED": "false"}
    return subprocess.Popen([sys.executable, "-m", "portal.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def outbox_count(edge: Deployment) -> int:
    with edge.ctx():
        count = db.session.query(OutboxEnvelope).count()
        db.session.rollback()
        return count


def test_forwarder_killed_mid_batch_and_restarted(pair, aws):
    edge, central = pair
    total = 150
    receipts = report_many(edge, total)
    worker = run_portal(edge, "forward", "--interval", "0.2")
    deadline = time.monotonic() + 60
    while outbox_count(edge) == total and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=10)
    left = outbox_count(edge)
    assert 0 < left < total, f"not killed mid-batch: {left} left"
    restarted = run_portal(edge, "forward", "--once")
    _, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err
    assert outbox_count(edge) == 0
    imported = 0
    while True:
        result = central_import(central)
        imported += result.imported
        if result.imported == 0 and result.duplicates == 0:
            break
    assert imported == total
    assert_each_receipt_once(edge, central, receipts)
    assert_nothing_readable_left(edge, aws)


def test_importer_dies_between_storing_and_deleting(pair, aws):
    edge, central = pair
    receipts = report_many(edge, 2)
    with edge.ctx():
        forward_once(edge.transport)
    central.transport.visibility_timeout = 1

    class Crash(BaseException):
        pass

    real_receive = central.transport.receive_envelopes

    def crashing_receive(limit=10):
        for delivery in real_receive(limit):
            def die():
                raise Crash
            delivery._ack = die
            yield delivery

    central.transport.receive_envelopes = crashing_receive
    with pytest.raises(Crash):
        central_import(central)
    central.transport.receive_envelopes = real_receive
    assert central_counts(central)[0] >= 1  # stored, but the message was never deleted
    time.sleep(1.5)  # the visibility timeout passes: SQS delivers the messages again
    central_import(central)
    assert_each_receipt_once(edge, central, receipts)
    assert_nothing_readable_left(edge, aws)
    assert aws.objects() == {}
    assert central.transport.backlog() == 0


def test_same_message_delivered_twice(pair, aws):
    edge, central = pair
    receipts = report_many(edge, 1)
    with edge.ctx():
        body = db.session.scalars(select(OutboxEnvelope)).one().body
        forward_once(edge.transport)
    envelope_id = json.loads(body)["id"]
    sqs = aws.client("sqs")
    pointer = json.dumps({"v": 1, "id": envelope_id, "key": f"envelopes/{envelope_id}"})
    sqs.send_message(QueueUrl=aws.queue_url, MessageBody=pointer)  # a duplicate delivery
    result = central_import(central)
    assert result.imported == 1 and result.duplicates == 1
    sqs.send_message(QueueUrl=aws.queue_url, MessageBody=pointer)  # after the object is gone
    result = central_import(central)
    assert (result.imported, result.duplicates, result.dead) == (0, 1, 0)
    assert_each_receipt_once(edge, central, receipts)
    assert_nothing_readable_left(edge, aws)


def test_corrupted_envelope_goes_to_dead_letters_and_the_rest_flows(pair, aws):
    edge, central = pair
    receipts = report_many(edge, 2)
    s3, sqs = aws.client("s3"), aws.client("sqs")
    bad_id = "00000000-0000-4000-8000-000000000bad"
    s3.put_object(Bucket=aws.bucket, Key=f"envelopes/{bad_id}", Body=b"\x00corrupted\xff")
    sqs.send_message(QueueUrl=aws.queue_url,
                     MessageBody=json.dumps({"v": 1, "id": bad_id, "key": f"envelopes/{bad_id}"}))
    sqs.send_message(QueueUrl=aws.queue_url, MessageBody="not a pointer")
    with edge.ctx():
        forward_once(edge.transport)
    total = {"imported": 0, "dead": 0}
    for _ in range(3):
        result = central_import(central)
        total["imported"] += result.imported
        total["dead"] += result.dead
    assert total == {"imported": 2, "dead": 2}
    assert_each_receipt_once(edge, central, receipts)
    assert_nothing_readable_left(edge, aws)
    dead = {k: v for k, v in aws.objects().items() if k.startswith("dead/")}
    assert len(dead) == 2 and b"\x00corrupted\xff" in dead.values()
    head = s3.head_object(Bucket=aws.bucket, Key=next(iter(dead)))
    assert head["Metadata"]["reason"]
    assert not [k for k in aws.objects() if k.startswith("envelopes/")]
    assert central.transport.backlog() == 0


def test_cli_import_once_over_s3(pair, aws):
    edge, central = pair
    report_many(edge, 3)
    forwarded = run_portal(edge, "forward", "--once")
    out, err = forwarded.communicate(timeout=60)
    assert forwarded.returncode == 0, err
    importer = run_portal(central, "import", "--once")
    out, err = importer.communicate(timeout=60)
    assert importer.returncode == 0, err
    assert out.strip().splitlines()[-1] == "imported 3"


def test_long_running_workers_stop_cleanly_on_sigterm(pair):
    edge, central = pair
    report_many(edge, 1)
    # Each worker is signalled once it has done a round (so it is surely in its loop), not after
    # a fixed sleep that a slow start-up on a busy machine can outlast.
    for deployment, command, worked in ((edge, "forward", lambda: outbox_count(edge) == 0),
                                        (central, "import", lambda: central_counts(central)[0] == 1)):
        worker = run_portal(deployment, command, "--interval", "0.2")
        deadline = time.monotonic() + 60
        while not worked():
            assert worker.poll() is None, f"{command} exited early"
            assert time.monotonic() < deadline, f"{command} did no round within 60 s"
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
