"""The S3 + SQS transport (``PORTAL_TRANSPORT=s3``), through boto3.

Each sealed envelope becomes an S3 object ``envelopes/<envelope id>`` (server-side encryption
requested; the key is a random UUID that says nothing about the report) and a small SQS
message pointing at it. The importer long-polls the queue, fetches the object, stores the
report, then deletes the object and the message. Status updates travel back on a second
queue, as the message body itself. boto3's standard settings apply, ``AWS_ENDPOINT_URL``
included, so any S3/SQS-compatible server works.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from portal.forwarding.transport import Delivery, TransportError

MESSAGE_VERSION = 1
AWS_ERRORS = (BotoCoreError, ClientError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "ClientError")
    return type(exc).__name__


class S3SqsTransport:
    def __init__(self, bucket: str, queue_url: str, status_queue_url: str = "",
                 kms_key_id: str = "", wait_seconds: int = 10, visibility_timeout: int = 120,
                 session: boto3.session.Session | None = None):
        self.bucket = bucket
        self.queue_url = queue_url
        self.status_queue_url = status_queue_url
        self.kms_key_id = kms_key_id
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        session = session or boto3.session.Session()
        config = Config(connect_timeout=3, read_timeout=wait_seconds + 10,
                        retries={"max_attempts": 3, "mode": "standard"})
        self.s3 = session.client("s3", config=config)
        self.sqs = session.client("sqs", config=config)

    @classmethod
    def from_settings(cls, settings) -> S3SqsTransport:
        return cls(settings.s3_bucket, settings.sqs_queue_url, settings.sqs_status_queue_url,
                   settings.kms_key_id, settings.sqs_wait_seconds)

    # -- start-up ---------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems that make this transport unusable now, one line each (empty when fine).

        Uses only calls both least-privilege roles may make: the bucket's location and the
        queues' attributes."""
        problems = []
        try:
            self.s3.get_bucket_location(Bucket=self.bucket)
        except AWS_ERRORS as exc:
            problems.append(f"PORTAL_S3_BUCKET: bucket {self.bucket!r} not usable ({_reason(exc)})")
        for name, url in (("PORTAL_SQS_QUEUE_URL", self.queue_url),
                          ("PORTAL_SQS_STATUS_QUEUE_URL", self.status_queue_url)):
            try:
                self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            except AWS_ERRORS as exc:
                problems.append(f"{name}: queue {url!r} not usable ({_reason(exc)})")
        return problems

    # -- envelopes --------------------------------------------------------------------------

    def send_envelope(self, envelope_id: str, data: bytes) -> None:
        key = f"envelopes/{envelope_id}"
        encryption = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            encryption["SSEKMSKeyId"] = self.kms_key_id
        try:
            # The same key on a retry: a resend overwrites the same bytes, nothing doubles.
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data,
                               ContentType="application/octet-stream", **encryption)
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps({"v": MESSAGE_VERSION, "id": envelope_id, "key": key}),
            )
        except AWS_ERRORS as exc:
            raise TransportError(f"S3/SQS send failed: {_reason(exc)}") from exc

    def _receive(self, url: str, limit: int, wait: int | None = None) -> list[dict]:
        try:
            answer = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=max(1, min(limit, 10)),
                WaitTimeSeconds=self.wait_seconds if wait is None else wait,
                VisibilityTimeout=self.visibility_timeout,
            )
        except AWS_ERRORS as exc:
            raise TransportError(f"SQS receive failed: {_reason(exc)}") from exc
        return answer.get("Messages", [])

    def _delete_message(self, url: str, handle: str) -> None:
        try:
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        except AWS_ERRORS as exc:
            raise TransportError(f"SQS delete failed: {_reason(exc)}") from exc

    def receive_envelopes(self, limit: int = 10) -> Iterator[Delivery]:
        for message in self._receive(self.queue_url, limit):
            handle = message["ReceiptHandle"]
            try:
                pointer = json.loads(message["Body"])
                key, envelope_id = str(pointer["key"]), str(pointer["id"])
            except (ValueError, KeyError, TypeError):
                yield Delivery(name=message["MessageId"], data=b"",
                               _ack=lambda h=handle: self._delete_message(self.queue_url, h))
                continue
            try:
                data = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if _reason(exc) not in ("NoSuchKey", "404"):
                    raise TransportError(f"S3 get failed: {_reason(exc)}") from exc
                data = b""  # already imported and deleted, or lost: the importer decides
            except BotoCoreError as exc:
                raise TransportError(f"S3 get failed: {_reason(exc)}") from exc

            def ack(key: str = key, handle: str = handle) -> None:
                # Object first: a crash in between leaves a redelivery whose object is gone,
                # which the importer recognises by the envelope id as already stored.
                try:
                    self.s3.delete_object(Bucket=self.bucket, Key=key)
                except AWS_ERRORS as exc:
                    raise TransportError(f"S3 delete failed: {_reason(exc)}") from exc
                self._delete_message(self.queue_url, handle)

            yield Delivery(name=key, data=data, _ack=ack, envelope_id=envelope_id)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Keep the bytes under ``dead/`` with the reason, then take the message away."""
        name = f"dead/{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(6)}"
        encryption = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            encryption["SSEKMSKeyId"] = self.kms_key_id
        try:
            self.s3.put_object(Bucket=self.bucket, Key=name, Body=delivery.data,
                               Metadata={"reason": reason[:500].encode("ascii", "replace").decode(),
                                         "source": delivery.name[:200]}, **encryption)
        except AWS_ERRORS as exc:
            raise TransportError(f"S3 dead-letter failed: {_reason(exc)}") from exc
        delivery.ack()

    # -- status updates ---------------------------------------------------------------------

    def send_status(self, data: bytes) -> None:
        try:
            self.sqs.send_message(QueueUrl=self.status_queue_url, MessageBody=data.decode())
        except AWS_ERRORS as exc:
            raise TransportError(f"SQS status send failed: {_reason(exc)}") from exc

    def reject_status(self, delivery: Delivery, reason: str) -> None:
        """Delete it: the edge may not write objects outside envelopes/, so there is no dead
        letter to keep (the forwarder has logged the reason); left in the queue, a forged or
        broken update would come back after every visibility timeout."""
        delivery.ack()

    def receive_status(self, limit: int = 10) -> Iterator[Delivery]:
        # A short wait: the edge's forwarder must not sit on the status queue.
        for message in self._receive(self.status_queue_url, limit, wait=min(self.wait_seconds, 1)):
            handle = message["ReceiptHandle"]
            yield Delivery(
                name=message["MessageId"], data=message["Body"].encode(),
                _ack=lambda h=handle: self._delete_message(self.status_queue_url, h),
            )

    # -- observability ----------------------------------------------------------------------

    def backlog(self) -> int:
        try:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=["ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
        except AWS_ERRORS as exc:
            raise TransportError(f"SQS attributes failed: {_reason(exc)}") from exc
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"])
