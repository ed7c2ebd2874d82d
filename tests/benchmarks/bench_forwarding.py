"""Forward and import throughput, local spool and S3 + SQS, against bare baselines.

    python tests/benchmarks/bench_forwarding.py --count 500

The bare baselines do the same I/O with no Portal code: for the spool, an fsync'd atomic
file write per envelope and a read + unlink; for S3 + SQS, a put_object + send_message per
envelope and a receive + get_object + delete_object + delete_message. moto runs in this
process's threads, so the S3 figures measure our overhead against the same server, not AWS.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from portal.app import create_app  # noqa: E402
from portal.forwarding.forwarder import forward_once  # noqa: E402
from portal.forwarding.importer import import_once  # noqa: E402
from portal.forwarding.keyring import generate  # noqa: E402
from portal.reporting.services import NewReport, accept_report  # noqa: E402
from tests.aws import CREDENTIALS, create_resources  # noqa: E402
from tests.conftest import make_settings  # noqa: E402


def fill_outbox(app, count: int) -> None:
    state = app.extensions["portal.reporting"]
    for i in range(count):
        accept_report(NewReport(portal="demo", lang="en", urls=[f"http://s{i}.example.test/"],
                                content_type="images", where_found="website",
                                description="benchmark", urgent=False, contact_email=""),
                      state["sealing_key"], state["receipt_key"])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_portal(app, count: int) -> tuple[float, float]:
    ext = app.extensions
    with app.app_context():
        fill_outbox(app, count)
        forward = timed(lambda: [forward_once(ext["portal.transport"], batch=200)
                                 for _ in range(count // 200 + 1)])
        imported = []
        took = timed(lambda: imported.append(import_once(
            ext["portal.transport"], ext["portal.private_keys"], ext["portal.contact_key"])))
        assert imported[0].imported == count, imported
    return count / forward, count / took


def bare_spool(folder: Path, count: int) -> tuple[float, float]:
    folder.mkdir(parents=True)
    payload = secrets.token_bytes(900)

    def write() -> None:
        for _ in range(count):
            tmp = folder / f".tmp-{uuid.uuid4().hex}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, folder / uuid.uuid4().hex)

    def read() -> None:
        for name in sorted(os.listdir(folder)):
            (folder / name).read_bytes()
            (folder / name).unlink()

    return count / timed(write), count / timed(read)


def bare_aws(resources, count: int) -> tuple[float, float]:
    s3, sqs = resources.client("s3"), resources.client("sqs")
    payload = secrets.token_bytes(900)

    def send() -> None:
        for _ in range(count):
            key = f"envelopes/{uuid.uuid4()}"
            s3.put_object(Bucket=resources.bucket, Key=key, Body=payload,
                          ServerSideEncryption="aws:kms")
            sqs.send_message(QueueUrl=resources.queue_url, MessageBody=key)

    def receive() -> None:
        done = 0
        while done < count:
            messages = sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", [])
            for message in messages:
                s3.get_object(Bucket=resources.bucket, Key=message["Body"])["Body"].read()
                s3.delete_object(Bucket=resources.bucket, Key=message["Body"])
                sqs.delete_message(QueueUrl=resources.queue_url,
                                   ReceiptHandle=message["ReceiptHandle"])
                done += 1

    return count / timed(send), count / timed(receive)


def report(name: str, ours: tuple[float, float], bare: tuple[float, float]) -> None:
    for i, step in enumerate(("forward", "import")):
        print(f"{name:6} {step:8} {ours[i]:8.0f} envelopes/s   bare {bare[i]:8.0f}/s   "
              f"ratio {ours[i] / bare[i]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    count = parser.parse_args().count
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        generate(base / "local" / "keys")
        app = create_app(make_settings(base / "local"))
        report("spool", run_portal(app, count), bare_spool(base / "bare-spool", count))

        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        try:
            resources = create_resources(endpoint)
            generate(base / "s3" / "keys")
            app = create_app(make_settings(base / "s3", env=resources.env()))
            ours = run_portal(app, count)
            report("s3+sqs", ours, bare_aws(create_resources(endpoint), count))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
