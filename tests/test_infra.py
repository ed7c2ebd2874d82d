"""cfn-lint over infra/aws/transport.yaml, plus checks of the security properties it promises.

Each property is a small checker that returns a list of problems. The template itself must give
no problems, and test_checkers_catch_regressions breaks a copy of the template in one way at a
time and expects the matching checker to complain, so none of the checks can pass vacuously.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "aws" / "transport.yaml"
HAVE_CFNLINT = importlib.util.find_spec("cfnlint") is not None

# cfn-lint 1.x has no `python -m cfnlint`; this runs the same entry point as the `cfn-lint`
# console script, with the interpreter running the tests.
CFN_LINT = "import sys; from cfnlint.runner import main; sys.exit(main())"

EDGE_FORBIDDEN_S3 = {
    "s3:getobject", "s3:getobjectversion", "s3:listbucket", "s3:listbucketversions",
    "s3:deleteobject", "s3:deleteobjectversion",
}
SUB_VAR = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")
Template = dict[str, Any]


def need_cfnlint() -> None:
    need(HAVE_CFNLINT, "cfn-lint is not installed")


def load_template() -> Template:
    from cfnlint.decode import decode_str

    template, matches = decode_str(TEMPLATE.read_text(encoding="utf-8"))
    assert template is not None and not matches, [str(m) for m in matches]
    # Plain dicts/lists/strings, so tests can deep-copy and mutate freely.
    return json.loads(json.dumps(template))


@pytest.fixture(scope="module")
def template() -> Template:
    need_cfnlint()
    return load_template()


# ---------------------------------------------------------------- helpers


def refs(value: Any) -> set[str]:
    """Logical IDs a value points at through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner.split(".")[0] if isinstance(inner, str) else inner[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found.update(SUB_VAR.findall(text))
                if not isinstance(inner, str):
                    found.update(refs(inner[1:]))
            else:
                found.update(refs(inner))
    elif isinstance(value, list):
        for item in value:
            found.update(refs(item))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def props(t: Template, logical_id: str) -> dict[str, Any]:
    return t["Resources"][logical_id].get("Properties", {})


def statements(t: Template, role: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in props(t, role).get("Policies", [])
        for statement in as_list(policy["PolicyDocument"]["Statement"])
    ]


def statement(t: Template, role: str, sid: str) -> dict[str, Any]:
    return next(s for s in statements(t, role) if s.get("Sid") == sid)


def grants(t: Template, role: str) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(lower-cased action, resources, condition) for each allowed action of a role."""
    return [
        (action.lower(), as_list(s.get("Resource", [])), s.get("Condition", {}))
        for s in statements(t, role)
        if s.get("Effect") == "Allow"
        for action in as_list(s.get("Action", []))
    ]


def allows(t: Template, role: str, action: str, target: str, suffix: str = "") -> bool:
    """Whether the role may do `action` on a resource built from `target` (ending in `suffix`)."""
    for granted, resources, _ in grants(t, role):
        if granted != action.lower():
            continue
        for resource in resources:
            text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else resource
            if target in refs(resource) and str(text).endswith(suffix):
                return True
    return False


def is_true(value: Any) -> bool:
    return value is True or value == "true"


# ---------------------------------------------------------------- checkers


def edge_problems(t: Template) -> list[str]:
    problems = []
    for s in statements(t, "EdgeRole"):
        if "NotAction" in s or "NotResource" in s:
            problems.append(f"edge statement {s.get('Sid')} uses NotAction/NotResource")
    for action, resources, condition in grants(t, "EdgeRole"):
        targets = refs(resources)
        if "*" in action:
            problems.append(f"edge has wildcard action {action}")
        if "*" in resources:
            problems.append(f"edge has {action} on every resource")
        if action in EDGE_FORBIDDEN_S3:
            problems.append(f"edge may {action}")
        if action == "sqs:receivemessage" and targets & {"EnvelopeQueue", "EnvelopeDeadLetterQueue"}:
            problems.append("edge may receive from the envelope queues")
        if action == "s3:putobject" and not all(
            isinstance(r, dict) and str(r.get("Fn::Sub", "")).endswith("/envelopes/*") for r in resources
        ):
            problems.append("edge may put objects outside envelopes/")
        if action == "kms:decrypt":
            via = condition.get("StringEquals", {}).get("kms:ViaService")
            if via != {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}:
                problems.append(f"edge kms:Decrypt is not limited to SQS (condition {condition})")
    for action, target, suffix in [
        ("s3:PutObject", "EnvelopeBucket", "/envelopes/*"),
        ("sqs:SendMessage", "EnvelopeQueue", ""),
        ("sqs:ReceiveMessage", "StatusQueue", ""),
        ("sqs:DeleteMessage", "StatusQueue", ""),
        ("kms:GenerateDataKey", "TransportKey", ""),
    ]:
        if not allows(t, "EdgeRole", action, target, suffix):
            problems.append(f"edge lacks {action} on {target}")
    return problems


def central_problems(t: Template) -> list[str]:
    problems = []
    for action, resources, _ in grants(t, "CentralRole"):
        if "*" in action or "*" in resources:
            problems.append(f"central has a wildcard: {action} on {resources}")
    for action, target, suffix in [
        ("s3:GetObject", "EnvelopeBucket", "/envelopes/*"),
        ("s3:DeleteObject", "EnvelopeBucket", "/envelopes/*"),
        ("s3:PutObject", "EnvelopeBucket", "/dead/*"),
        ("sqs:ReceiveMessage", "EnvelopeQueue", ""),
        ("sqs:DeleteMessage", "EnvelopeQueue", ""),
        ("sqs:ReceiveMessage", "EnvelopeDeadLetterQueue", ""),
        ("sqs:SendMessage", "StatusQueue", ""),
        ("kms:Decrypt", "TransportKey", ""),
    ]:
        if not allows(t, "CentralRole", action, target, suffix):
            problems.append(f"central lacks {action} on {target}")
    if allows(t, "CentralRole", "s3:PutObject", "EnvelopeBucket", "/envelopes/*"):
        problems.append("central may forge envelopes")
    return problems


def bucket_problems(t: Template) -> list[str]:
    problems = []
    bucket = props(t, "EnvelopeBucket")
    block = bucket.get("PublicAccessBlockConfiguration", {})
    for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        if not is_true(block.get(flag)):
            problems.append(f"public access: {flag} is not true")
    ownership = [r.get("ObjectOwnership") for r in bucket.get("OwnershipControls", {}).get("Rules", [])]
    if ownership != ["BucketOwnerEnforced"]:
        problems.append(f"object ownership is {ownership}")
    if bucket.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        problems.append("versioning keeps deleted envelopes")
    rules = [
        r for r in bucket.get("LifecycleConfiguration", {}).get("Rules", [])
        if r.get("Status") == "Enabled" and not r.get("Prefix") and not r.get("Filter")
    ]
    if not any(r.get("ExpirationInDays") == {"Ref": "EnvelopeRetentionDays"} for r in rules):
        problems.append("no lifecycle rule expires every object after EnvelopeRetentionDays")
    if not any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 1 for r in rules):
        problems.append("incomplete multipart uploads are not aborted after 1 day")
    encryption = bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    if not encryption or not all(
        e.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == "aws:kms"
        and refs(e["ServerSideEncryptionByDefault"].get("KMSMasterKeyID")) == {"TransportKey"}
        and is_true(e.get("BucketKeyEnabled"))
        for e in encryption
    ):
        problems.append(f"bucket is not SSE-KMS with TransportKey and a bucket key: {encryption}")

    policy = props(t, "EnvelopeBucketPolicy")
    if refs(policy.get("Bucket")) != {"EnvelopeBucket"}:
        problems.append("bucket policy is not attached to the envelope bucket")
    denies = [s for s in as_list(policy.get("PolicyDocument", {}).get("Statement", []))
              if s.get("Effect") == "Deny" and s.get("Principal") == "*"]
    if not any(
        "s3:*" in as_list(s.get("Action"))
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        and {"EnvelopeBucket"} == refs(s.get("Resource"))
        and len(as_list(s.get("Resource"))) == 2
        for s in denies
    ):
        problems.append("bucket policy does not deny requests without TLS on bucket and objects")
    if not any(
        "s3:PutObject" in as_list(s.get("Action"))
        and s.get("Condition", {}).get("StringNotEquals", {}).get("s3:x-amz-server-side-encryption")
        == "aws:kms"
        for s in denies
    ):
        problems.append("bucket policy does not deny uploads without SSE-KMS")
    return problems


def queue_problems(t: Template) -> list[str]:
    problems = []
    for queue in ("EnvelopeQueue", "EnvelopeDeadLetterQueue", "StatusQueue", "StatusDeadLetterQueue"):
        p = props(t, queue)
        if refs(p.get("KmsMasterKeyId")) != {"TransportKey"}:
            problems.append(f"{queue} is not encrypted with TransportKey")
        if p.get("SqsManagedSseEnabled") is not None:
            problems.append(f"{queue} sets SqsManagedSseEnabled")
        if int(p.get("MessageRetentionPeriod", 0)) != 14 * 24 * 3600:
            problems.append(f"{queue} does not keep messages for 14 days")
    pairs = (("EnvelopeQueue", "EnvelopeDeadLetterQueue"), ("StatusQueue", "StatusDeadLetterQueue"))
    for queue, dlq in pairs:
        p = props(t, queue)
        redrive = p.get("RedrivePolicy", {})
        if refs(redrive.get("deadLetterTargetArn")) != {dlq}:
            problems.append(f"{queue} does not redrive to {dlq}")
        if str(redrive.get("maxReceiveCount")) != "5":
            problems.append(f"{queue} maxReceiveCount is {redrive.get('maxReceiveCount')}")
        if str(p.get("VisibilityTimeout")) != "120" or str(p.get("ReceiveMessageWaitTimeSeconds")) != "20":
            problems.append(f"{queue} visibility timeout / long polling differ from 120 s / 20 s")
    key = props(t, "TransportKey")
    if not is_true(key.get("EnableKeyRotation")):
        problems.append("KMS key rotation is off")
    return problems


def output_problems(t: Template) -> list[str]:
    expected = {
        "BucketName": ("EnvelopeBucket", "PORTAL_S3_BUCKET"),
        "EnvelopeQueueUrl": ("EnvelopeQueue", "PORTAL_SQS_QUEUE_URL"),
        "StatusQueueUrl": ("StatusQueue", "PORTAL_SQS_STATUS_QUEUE_URL"),
        "EnvelopeDeadLetterQueueUrl": ("EnvelopeDeadLetterQueue", None),
        "KmsKeyArn": ("TransportKey", "PORTAL_KMS_KEY_ID"),
        "EdgeRoleArn": ("EdgeRole", None),
        "CentralRoleArn": ("CentralRole", None),
    }
    problems = []
    outputs = t.get("Outputs", {})
    for name, (target, variable) in expected.items():
        output = outputs.get(name)
        if output is None:
            problems.append(f"output {name} is missing")
            continue
        if refs(output.get("Value")) != {target}:
            problems.append(f"output {name} does not point at {target}")
        description = output.get("Description", "")
        if not description or (variable and not re.search(rf"\b{variable}\b", description)):
            problems.append(f"output {name} description does not name {variable or 'anything'}")
    return problems


# ---------------------------------------------------------------- tests


def test_cfn_lint_is_clean():
    need_cfnlint()
    run = subprocess.run(
        [sys.executable, "-c", CFN_LINT, str(TEMPLATE)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    output = (run.stdout + run.stderr).strip()
    assert run.returncode == 0 and not output, f"cfn-lint exit {run.returncode}:\n{output}"


def test_edge_role_is_write_only(template):
    assert edge_problems(template) == []


def test_central_role_can_collect_and_answer(template):
    assert central_problems(template) == []


def test_bucket_is_private_kms_encrypted_and_expires(template):
    assert bucket_problems(template) == []


def test_queues_are_kms_encrypted_with_dead_letter_queues(template):
    assert queue_problems(template) == []


def test_outputs_name_the_portal_variables(template):
    assert output_problems(template) == []


def _add_action(role: str, sid: str, action: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        s = statement(t, role, sid)
        s["Action"] = [*as_list(s["Action"]), action]
    return mutate


def _drop_action(role: str, sid: str, action: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        s = statement(t, role, sid)
        s["Action"] = [a for a in as_list(s["Action"]) if a != action]
    return mutate


def _set(path: str, value: Any) -> Callable[[Template], None]:
    """Set (or with value None, delete) a dotted path under Resources."""
    def mutate(t: Template) -> None:
        *parents, last = path.split(".")
        node = t["Resources"]
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is None:
            del node[last]
        else:
            node[last] = value
    return mutate


def _drop_statement(resource: str, sid: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        document = props(t, resource)["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != sid]
    return mutate


def _edge_lists_bucket(t: Template) -> None:
    statement(t, "EdgeRole", "BucketLocation")["Action"] = ["s3:GetBucketLocation", "s3:ListBucket"]


def _edge_reads_envelope_queue(t: Template) -> None:
    _add_action("EdgeRole", "AnnounceEnvelopes", "sqs:ReceiveMessage")(t)


def _edge_decrypts_anything(t: Template) -> None:
    del statement(t, "EdgeRole", "DecryptOnlyThroughSqs")["Condition"]


def _edge_decrypts_via_s3(t: Template) -> None:
    statement(t, "EdgeRole", "DecryptOnlyThroughSqs")["Condition"]["StringEquals"]["kms:ViaService"] = {
        "Fn::Sub": "s3.${AWS::Region}.amazonaws.com"
    }


def _edge_puts_anywhere(t: Template) -> None:
    statement(t, "EdgeRole", "PutEnvelopes")["Resource"] = {"Fn::Sub": "${EnvelopeBucket.Arn}/*"}


def _envelope_queue_unencrypted(t: Template) -> None:
    del props(t, "EnvelopeQueue")["KmsMasterKeyId"]
    props(t, "EnvelopeQueue")["SqsManagedSseEnabled"] = True


MUTATIONS: dict[str, tuple[Callable[[Template], None], Callable[[Template], list[str]]]] = {
    "edge GetObject": (_add_action("EdgeRole", "PutEnvelopes", "s3:GetObject"), edge_problems),
    "edge DeleteObject": (_add_action("EdgeRole", "PutEnvelopes", "s3:DeleteObject"), edge_problems),
    "edge s3 wildcard": (_add_action("EdgeRole", "PutEnvelopes", "s3:*"), edge_problems),
    "edge ListBucket": (_edge_lists_bucket, edge_problems),
    "edge receives envelopes": (_edge_reads_envelope_queue, edge_problems),
    "edge decrypt unconditional": (_edge_decrypts_anything, edge_problems),
    "edge decrypt via s3": (_edge_decrypts_via_s3, edge_problems),
    "edge puts outside envelopes/": (_edge_puts_anywhere, edge_problems),
    "edge cannot send": (_drop_action("EdgeRole", "AnnounceEnvelopes", "sqs:SendMessage"), edge_problems),
    "central no GetObject": (
        _drop_action("CentralRole", "CollectEnvelopes", "s3:GetObject"), central_problems
    ),
    "central no DeleteMessage": (
        _drop_action("CentralRole", "ConsumeEnvelopeQueues", "sqs:DeleteMessage"), central_problems
    ),
    "central no Decrypt": (_drop_action("CentralRole", "UseTransportKey", "kms:Decrypt"), central_problems),
    "public policy allowed": (
        _set("EnvelopeBucket.Properties.PublicAccessBlockConfiguration.BlockPublicPolicy", False),
        bucket_problems,
    ),
    "no public access block": (
        _set("EnvelopeBucket.Properties.PublicAccessBlockConfiguration", None), bucket_problems
    ),
    "no expiration": (
        _set("EnvelopeBucket.Properties.LifecycleConfiguration.Rules.0.ExpirationInDays", None),
        bucket_problems,
    ),
    "expiration only for a prefix": (
        _set("EnvelopeBucket.Properties.LifecycleConfiguration.Rules.0.Prefix", "envelopes/"),
        bucket_problems,
    ),
    "versioning on": (
        _set("EnvelopeBucket.Properties.VersioningConfiguration", {"Status": "Enabled"}), bucket_problems
    ),
    "bucket SSE-S3": (
        _set(
            "EnvelopeBucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration.0"
            ".ServerSideEncryptionByDefault",
            {"SSEAlgorithm": "AES256"},
        ),
        bucket_problems,
    ),
    "TLS deny removed": (_drop_statement("EnvelopeBucketPolicy", "DenyWithoutTls"), bucket_problems),
    "SSE-KMS deny removed": (_drop_statement("EnvelopeBucketPolicy", "DenyPutWithoutKms"), bucket_problems),
    "envelope queue SQS-managed SSE": (_envelope_queue_unencrypted, queue_problems),
    "status DLQ unencrypted": (_set("StatusDeadLetterQueue.Properties.KmsMasterKeyId", None), queue_problems),
    "no redrive": (_set("EnvelopeQueue.Properties.RedrivePolicy", None), queue_problems),
    "no maxReceiveCount": (
        _set("EnvelopeQueue.Properties.RedrivePolicy.maxReceiveCount", None), queue_problems
    ),
    "key rotation off": (_set("TransportKey.Properties.EnableKeyRotation", False), queue_problems),
    "output without variable": (
        lambda t: t["Outputs"]["StatusQueueUrl"].update(Description="Status queue URL."), output_problems
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_checkers_catch_regressions(template, name):
    mutate, checker = MUTATIONS[name]
    broken = copy.deepcopy(template)
    mutate(broken)
    assert checker(broken), f"{checker.__name__} did not notice: {name}"
