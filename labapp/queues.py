"""SQS as the lab uses it: a guarded client, EB-style queue pairs, depths, peeks and redrive."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import EndpointError, LabError

log = logging.getLogger("labapp.queues")

ALLOW_AWS_ENV = "LAB_ALLOW_AWS"
# Host names of emulators on a private network (e.g. `localstack` in docker compose) that get the
# same dummy credentials as loopback; naming them is the user's opt-in.
LOCAL_HOSTS_ENV = "LAB_LOCAL_HOSTS"
REGION = "us-east-1"
# Dummy keys: a local endpoint accepts anything, and passing them explicitly means a learner's
# real profile or AWS_* variables are never picked up by accident.
LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}

SqsClient = Any  # boto3's generated client has no importable static type without extra stubs


def is_local(url: str) -> bool:
    """Return True when url points at this machine or at an emulator host named in LAB_LOCAL_HOSTS."""
    host = urlparse(url).hostname or ""
    named = {name.strip() for name in os.environ.get(LOCAL_HOSTS_ENV, "").split(",") if name.strip()}
    if host == "localhost" or host in named:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sqs_client(
    endpoint_url: str | None, *, read_timeout: float = 30, allow_aws: bool | None = None
) -> SqsClient:
    """Return an SQS client for a local endpoint, refusing real AWS unless the user opted in."""
    if allow_aws is None:
        allow_aws = os.environ.get(ALLOW_AWS_ENV) == "1"
    config = Config(
        connect_timeout=2,
        read_timeout=read_timeout,
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=20,
    )
    if endpoint_url is not None and is_local(endpoint_url):
        # A session that ignores AWS_PROFILE: a profile named on a work laptop but missing here
        # would otherwise fail with ProfileNotFound, and a local endpoint needs none.
        without_profile = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        return boto3.session.Session(**LOCAL_CREDENTIALS, botocore_session=without_profile).client(
            "sqs", endpoint_url=endpoint_url, region_name=REGION, config=config
        )
    if not allow_aws:
        where = endpoint_url or "real AWS"
        raise EndpointError(
            f"Refusing to talk to {where}: the lab only uses endpoints on this machine; "
            f"set {ALLOW_AWS_ENV}=1 if you really mean to use AWS."
        )
    log.warning("Using %s with your own AWS credentials (%s=1).", endpoint_url or "real AWS", ALLOW_AWS_ENV)
    return boto3.session.Session().client("sqs", endpoint_url=endpoint_url, config=config)


@dataclasses.dataclass(frozen=True)
class QueuePair:
    """A worker queue and its dead-letter queue, wired as EB wires its auto-created ones."""

    name: str
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str
    max_receive_count: int

    @property
    def dlq_name(self) -> str:
        return self.dlq_url.rsplit("/", 1)[-1]


def _arn(sqs: SqsClient, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def ensure_queues(sqs: SqsClient, name: str, max_retries: int, visibility_timeout: int = 30) -> QueuePair:
    """Create (or reuse) `name` and `name-dlq`, with RedrivePolicy maxReceiveCount = MaxRetries."""
    try:
        # The DLQ keeps messages 14 days: a standard queue keeps the original enqueue time
        # when a message moves, so a shorter retention could drop it soon after it arrives.
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})[
            "QueueUrl"
        ]
        dlq_arn = _arn(sqs, dlq_url)
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_retries})
        attributes = {"RedrivePolicy": policy, "VisibilityTimeout": str(visibility_timeout)}
        try:
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return QueuePair(name, url, _arn(sqs, url), dlq_url, dlq_arn, max_retries)
    except (BotoCoreError, ClientError) as exc:
        raise EndpointError(f"Could not set up queue {name!r}: {exc}") from None


def lookup_queues(sqs: SqsClient, name: str) -> QueuePair:
    """Find an existing queue pair by name through get_queue_url (no account id is assumed)."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])[
            "Attributes"
        ]
    except ClientError as exc:
        raise LabError(f"Queue {name!r} does not exist; run `labapp up` first.") from exc
    except BotoCoreError as exc:
        raise EndpointError(
            f"The SQS endpoint does not answer ({exc}); run `labapp up` or `labapp doctor`."
        ) from None
    redrive = json.loads(attrs.get("RedrivePolicy", "{}") or "{}")
    dlq_arn = redrive.get("deadLetterTargetArn", "")
    dlq_name = dlq_arn.rsplit(":", 1)[-1] if dlq_arn else f"{name}-dlq"
    dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    return QueuePair(
        name, url, attrs["QueueArn"], dlq_url, _arn(sqs, dlq_url), int(redrive.get("maxReceiveCount", 0))
    )


@dataclasses.dataclass(frozen=True)
class Depth:
    """What CloudWatch would show for a queue pair at one moment."""

    visible: int
    in_flight: int
    delayed: int
    dead_letter: int


def depth(sqs: SqsClient, queues: QueuePair) -> Depth:
    """Return visible, in-flight, delayed and DLQ counts."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    main = sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=names)["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=queues.dlq_url, AttributeNames=names[:1])["Attributes"]
    return Depth(
        visible=int(main.get(names[0], 0)),
        in_flight=int(main.get(names[1], 0)),
        delayed=int(main.get(names[2], 0)),
        dead_letter=int(dlq.get(names[0], 0)),
    )


def string_attributes(attributes: Mapping[str, str | int | float | bytes]) -> dict[str, dict[str, Any]]:
    """Turn a plain mapping into SQS MessageAttributes (String, Number or Binary by Python type)."""
    result: dict[str, dict[str, Any]] = {}
    for key, value in attributes.items():
        if isinstance(value, bytes):
            result[key] = {"DataType": "Binary", "BinaryValue": value}
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            result[key] = {"DataType": "String", "StringValue": str(value)}
        else:
            result[key] = {"DataType": "Number", "StringValue": str(value)}
    return result


# What real SQS refuses and moto lets through; the kit refuses it too, so a lab behaves like AWS.
MAX_MESSAGE_BYTES = 262_144  # body plus attributes, and also a whole SendMessageBatch
MAX_ATTRIBUTES = 10
MAX_ATTRIBUTE_NAME = 256
_NOT_IN_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _check_text(text: str, what: str) -> None:
    bad = _NOT_IN_SQS_TEXT.search(text)
    if bad:
        raise LabError(
            f"{what} has U+{ord(bad.group()):04X} at character {bad.start()}, which SQS does not allow."
        )


def _attribute_bytes(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    size = 0
    for name, attribute in attributes.items():
        value = attribute.get("BinaryValue", b"") or str(attribute.get("StringValue", "")).encode()
        size += len(name.encode()) + len(str(attribute["DataType"]).encode()) + len(value)
    return size


def check_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Refuse message attributes SQS would refuse, naming the rule; return their size in bytes."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise LabError(f"A message has {len(attributes)} attributes; SQS allows at most {MAX_ATTRIBUTES}.")
    for name, attribute in attributes.items():
        if len(name) > MAX_ATTRIBUTE_NAME:
            raise LabError(f"Attribute name {name[:20]!r}... is longer than {MAX_ATTRIBUTE_NAME} characters.")
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise LabError(f"Attribute name {name!r} is invalid: use letters, digits, '_', '-' and '.'.")
        if name.lower().startswith(("aws.", "amazon.")):
            raise LabError(
                f"Attribute name {name!r} is reserved: names starting AWS. or Amazon. belong to AWS."
            )
        if name.startswith(".") or name.endswith("."):
            raise LabError(f"Attribute name {name!r} may not start or end with '.'.")
        if ".." in name:
            raise LabError(f"Attribute name {name!r} may not contain '..'.")
        if str(attribute.get("DataType", "")).startswith("Binary"):
            if not attribute.get("BinaryValue"):
                raise LabError(f"Attribute {name!r} is empty; SQS needs a value.")
        else:
            value = str(attribute.get("StringValue", ""))
            if value == "":
                raise LabError(f"Attribute {name!r} is empty; SQS needs a value.")
            _check_text(value, f"Attribute {name!r}")
    return _attribute_bytes(attributes)


def check_body(body: str, attribute_bytes: int = 0) -> int:
    """Refuse a message body SQS would refuse, naming the rule; return the message's size in bytes."""
    if body == "":
        raise LabError("The message body is empty; SQS needs at least one character.")
    _check_text(body, "The message body")
    size = len(body.encode("utf-8")) + attribute_bytes
    if size > MAX_MESSAGE_BYTES:
        raise LabError(
            f"The message is {size:,} bytes with its attributes; SQS allows at most {MAX_MESSAGE_BYTES:,}."
        )
    return size


def send_messages(
    sqs: SqsClient,
    queue_url: str,
    bodies: Iterable[str],
    attributes: Mapping[str, str | int | float | bytes] | None = None,
    delay_seconds: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Send bodies in batches (ten, and 256 KiB, at most) and return the ids; raise if SQS would refuse any."""
    if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int) or not 0 <= delay_seconds <= 900:
        raise LabError(f"DelaySeconds must be a whole number from 0 to 900; got {delay_seconds!r}.")
    message_attributes = string_attributes(attributes or {})
    attribute_bytes = check_attributes(message_attributes)
    # Check every body before sending any, so a bad one never leaves a batch half sent.
    sized = [(body, check_body(body, attribute_bytes)) for body in bodies]
    ids: list[str] = []
    batch: list[str] = []
    batch_bytes = 0

    def flush() -> None:
        nonlocal batch_bytes
        entries = [
            {"Id": str(i), "MessageBody": body, "DelaySeconds": delay_seconds} for i, body in enumerate(batch)
        ]
        if message_attributes:
            for entry in entries:
                entry["MessageAttributes"] = message_attributes
        reply = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if reply.get("Failed"):
            first = reply["Failed"][0]
            raise LabError(f"SQS refused a message: {first.get('Message', first.get('Code'))}.")
        ids.extend(entry["MessageId"] for entry in sorted(reply["Successful"], key=lambda e: int(e["Id"])))
        if progress:
            progress(len(batch))
        batch.clear()
        batch_bytes = 0

    for body, size in sized:
        if batch and batch_bytes + size > MAX_MESSAGE_BYTES:
            flush()
        batch.append(body)
        batch_bytes += size
        if len(batch) == 10:
            flush()
    if batch:
        flush()
    return ids


def peek(sqs: SqsClient, queue_url: str, max_messages: int = 10) -> list[dict[str, Any]]:
    """Look at up to ten messages without consuming them (they are made visible again at once).

    A peek is still a receive: it raises ApproximateReceiveCount, and on a queue with a
    RedrivePolicy enough peeks move a message to the DLQ, exactly as on AWS.
    """
    reply = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max(1, min(10, max_messages)),
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
    )
    return list(reply.get("Messages", []))


def purge(sqs: SqsClient, queue_url: str) -> str:
    """Delete every visible message in a queue; return how ("PurgeQueue", or "drained").

    SQS allows one PurgeQueue per queue per minute (moto enforces it too). A notebook run twice in
    a row would hit that, so the second time the messages are received and deleted instead.
    """
    try:
        sqs.purge_queue(QueueUrl=queue_url)
        return "PurgeQueue"
    except ClientError as exc:
        if "PurgeQueueInProgress" not in exc.response.get("Error", {}).get("Code", ""):
            raise
    drain(sqs, queue_url)
    return "drained"


def _receive_batch(sqs: SqsClient, queue_url: str, n: int = 10) -> list[dict[str, Any]]:
    """Receive up to n visible messages at once, with their attributes, hidden for 30 s."""
    reply = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=n,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
        VisibilityTimeout=30,
        WaitTimeSeconds=0,
    )
    return list(reply.get("Messages", []))


def drain(sqs: SqsClient, queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete every visible message of a queue; return them."""
    found: list[dict[str, Any]] = []
    while messages := _receive_batch(sqs, queue_url):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        found += messages
    return found


def redrive(sqs: SqsClient, queues: QueuePair, max_messages: int | None = None) -> tuple[str, int]:
    """Move DLQ messages back to the worker queue; return (how, count moved or -1 if SQS does it async).

    StartMessageMoveTask is used where the endpoint has it (AWS, LocalStack). moto lacks it, so
    the kit then moves messages itself: receive from the DLQ, send the same body and attributes
    to the source queue, and delete from the DLQ only after the send succeeded.
    """
    if max_messages is None:
        try:
            sqs.start_message_move_task(SourceArn=queues.dlq_arn, DestinationArn=queues.arn)
            return "StartMessageMoveTask", -1
        except ClientError as exc:
            log.info(
                "StartMessageMoveTask unavailable (%s); moving messages by hand.",
                exc.response["Error"]["Code"],
            )
    return "receive-send-delete", move_messages(sqs, queues.dlq_url, queues.url, max_messages)


def move_messages(sqs: SqsClient, source_url: str, target_url: str, max_messages: int | None = None) -> int:
    """Move messages one batch at a time, keeping body and attributes; return how many moved."""
    moved = 0
    while max_messages is None or moved < max_messages:
        messages = _receive_batch(
            sqs, source_url, 10 if max_messages is None else min(10, max_messages - moved)
        )
        if not messages:
            break
        for message in messages:
            _move(sqs, source_url, target_url, message)
            moved += 1
    return moved


def _move(sqs: SqsClient, source_url: str, target_url: str, message: dict[str, Any]) -> str:
    """Send one received message on with its body and attributes, then delete it; return the new id."""
    kwargs: dict[str, Any] = {"QueueUrl": target_url, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        kwargs["MessageAttributes"] = message["MessageAttributes"]
    new_id = str(sqs.send_message(**kwargs)["MessageId"])
    # Deleted only after the send succeeded: a failure leaves a copy, never a loss.
    sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
    return new_id


MAX_SEARCH_BATCHES = 100  # 1,000 messages: more than a lab's DLQ ever holds


def move_selected(sqs: SqsClient, source_url: str, target_url: str, message_ids: Iterable[str]) -> list[str]:
    """Move only the messages with these ids, keeping body and attributes; return their new ids.

    StartMessageMoveTask moves a whole queue, so picking messages means receive, send, delete.
    Messages looked at but not picked stay invisible until the search ends, so the same ones do
    not come back in every batch, and then are made visible again at once.
    """
    wanted = set(message_ids)
    moved: list[str] = []
    held: list[dict[str, Any]] = []
    try:
        for _ in range(MAX_SEARCH_BATCHES):
            if not wanted:
                break
            messages = _receive_batch(sqs, source_url)
            if not messages:
                break
            for message in messages:
                if message["MessageId"] not in wanted:
                    held.append(message)
                    continue
                moved.append(_move(sqs, source_url, target_url, message))
                wanted.discard(message["MessageId"])
    finally:
        for message in held:
            sqs.change_message_visibility(
                QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return moved
