"""SQS as the lab uses it: EB-style queue pairs, depths, sending, peeks, purges and redrive."""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import EndpointError, LabError
from labapp.sqs.client import SqsClient
from labapp.sqs.limits import (
    DEFAULT_VISIBILITY_S,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_RETENTION_S,
    MIN_MESSAGE_SIZE_SETTING,
    check_attributes,
    check_body,
    check_delay,
    check_size,
)
from labapp.sqs.look import PeekReceives, look

log = logging.getLogger("labapp.sqs")

#: How many queue names an error lists before it says "and N more".
LISTED = 20

MOVE_TASK_TIMEOUT_S = 30.0


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


def ensure_queues(
    sqs: SqsClient, name: str, max_retries: int, visibility_timeout: int = DEFAULT_VISIBILITY_S
) -> QueuePair:
    """Create (or reuse) `name` and `name-dlq`, with RedrivePolicy maxReceiveCount = MaxRetries."""
    try:
        # The DLQ keeps messages 14 days: a standard queue keeps the original enqueue time
        # when a message moves, so a shorter retention could drop it soon after it arrives.
        dlq_url = sqs.create_queue(
            QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(MAX_RETENTION_S)}
        )["QueueUrl"]
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


NON_EXISTENT_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in NON_EXISTENT_CODES


def queue_names(sqs: SqsClient, prefix: str = "") -> list[str]:
    """Return the names of the endpoint's queues (those starting with prefix), sorted."""
    urls: list[str] = []
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix):
        urls += page.get("QueueUrls", [])
    return sorted(url.rsplit("/", 1)[-1] for url in urls)


def _no_such_queue(sqs: SqsClient, name: str) -> LabError:
    endpoint = sqs.meta.endpoint_url
    there = queue_names(sqs)
    if not there:
        return LabError(
            f"No queue named {name!r} on {endpoint}, which has no queues; `labapp up` makes the lab's."
        )
    # A typo is the usual reason: the closest names first, then the lab's own, then the rest.
    close = difflib.get_close_matches(name, there, n=3, cutoff=0.7)
    guess = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    ordered = sorted(there, key=lambda q: (not q.startswith("lab-"), q))
    listed = ", ".join(ordered[:LISTED]) + (f" and {len(there) - LISTED} more" if len(there) > LISTED else "")
    return LabError(f"No queue named {name!r} on {endpoint}.{guess} Queues there: {listed}.")


def lookup_queues(sqs: SqsClient, name: str) -> QueuePair:
    """Find an existing queue and the DLQ its RedrivePolicy names (no account id is assumed).

    A queue without a RedrivePolicy has no DLQ: its pair's dlq_url and dlq_arn are empty.
    """
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])[
            "Attributes"
        ]
        redrive = json.loads(attrs.get("RedrivePolicy", "{}") or "{}")
        dlq_arn = str(redrive.get("deadLetterTargetArn", ""))
        dlq_url = ""
        if dlq_arn:
            dlq_name = dlq_arn.rsplit(":", 1)[-1]
            try:
                dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            except ClientError as exc:
                if not _missing(exc):
                    raise
                raise LabError(
                    f"Queue {name!r} sends dead letters to {dlq_name!r}, which does not exist on "
                    f"{sqs.meta.endpoint_url}."
                ) from None
    except ClientError as exc:
        if _missing(exc):
            raise _no_such_queue(sqs, name) from None
        raise
    except BotoCoreError as exc:
        raise EndpointError(
            f"The SQS endpoint does not answer ({exc}); run `labapp up` or `labapp doctor`."
        ) from None
    return QueuePair(name, url, attrs["QueueArn"], dlq_url, dlq_arn, int(redrive.get("maxReceiveCount", 0)))


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


def max_message_bytes(sqs: SqsClient, queue_url: str) -> int:
    """Return the most bytes one message may have on this queue: its MaximumMessageSize, at most 1 MiB."""
    # docs/aws-behaviour.md#sqs-message-size: a queue's MaximumMessageSize applies when set lower.
    reply = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"])
    setting = reply.get("Attributes", {}).get("MaximumMessageSize")
    return min(MAX_MESSAGE_BYTES, int(setting)) if setting else MAX_MESSAGE_BYTES


def send_messages(
    sqs: SqsClient,
    queue_url: str,
    bodies: Iterable[str],
    attributes: Mapping[str, str | int | float | bytes] | None = None,
    delay_seconds: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Send bodies in batches (ten, and 1 MiB, at most) and return the ids; raise if SQS would refuse any."""
    check_delay(delay_seconds)
    message_attributes = string_attributes(attributes or {})
    attribute_bytes = check_attributes(message_attributes)
    # Check every body before sending any, so a bad one never leaves a batch half sent.
    sized = [(body, check_body(body, attribute_bytes)) for body in bodies]
    if any(size > MIN_MESSAGE_SIZE_SETTING for _, size in sized):
        # Only a message over 1 KiB can be too big for some queue; asked once per call, not per batch.
        limit = max_message_bytes(sqs, queue_url)
        for _, size in sized:
            check_size(size, limit)
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
        if batch and batch_bytes + size > MAX_BATCH_BYTES:
            flush()
        batch.append(body)
        batch_bytes += size
        if len(batch) == MAX_BATCH:
            flush()
    if batch:
        flush()
    return ids


def peek(
    sqs: SqsClient, queue_url: str, max_messages: int = 10, *, receive_ok: bool = False
) -> list[dict[str, Any]]:
    """Look at up to max_messages messages, oldest first, without side effects where the endpoint allows.

    The embedded endpoint and LocalStack list messages without receiving them (sqs/look.py), so
    a look changes no receive count. Real SQS has no such call: there a peek is a receive with
    VisibilityTimeout 0, which raises each message's ApproximateReceiveCount and so counts toward
    maxReceiveCount; it happens only with receive_ok=True, else PeekReceives is raised.
    """
    looked = look(sqs, queue_url)
    if looked is not None:
        return looked[: max(0, max_messages)]
    if not receive_ok:
        raise PeekReceives(
            f"{sqs.meta.endpoint_url} cannot show messages without receiving them: each look would "
            "count toward the queue's maxReceiveCount."
        )
    reply = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
    )
    return [{**message, "State": "visible"} for message in reply.get("Messages", [])]


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


def receive_batch(sqs: SqsClient, queue_url: str, n: int = MAX_BATCH) -> list[dict[str, Any]]:
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
    while messages := receive_batch(sqs, queue_url):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        found += messages
    return found
