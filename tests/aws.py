"""An S3/SQS-compatible server on loopback (moto in server mode) for the AWS path."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import boto3

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class AwsResources:
    endpoint: str
    bucket: str
    queue_url: str
    status_queue_url: str

    def env(self) -> dict[str, str]:
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "PORTAL_TRANSPORT": "s3",
            "PORTAL_S3_BUCKET": self.bucket,
            "PORTAL_SQS_QUEUE_URL": self.queue_url,
            "PORTAL_SQS_STATUS_QUEUE_URL": self.status_queue_url,
            "PORTAL_SQS_WAIT_SECONDS": "1",
        }

    def client(self, name: str):
        return boto3.client(name, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def objects(self) -> dict[str, bytes]:
        s3 = self.client("s3")
        listing = s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                for o in listing}


def create_resources(endpoint: str) -> AwsResources:
    suffix = secrets.token_hex(4)
    probe = AwsResources(endpoint, f"envelopes-{suffix}", "", "")
    probe.client("s3").create_bucket(Bucket=probe.bucket)
    sqs = probe.client("sqs")
    probe.queue_url = sqs.create_queue(QueueName=f"envelopes-{suffix}")["QueueUrl"]
    probe.status_queue_url = sqs.create_queue(QueueName=f"status-{suffix}")["QueueUrl"]
    return probe
