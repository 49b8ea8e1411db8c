"""SQS as the lab uses it: EB-style queue pairs, depths, sending, peeks, purges and redrive."""

from __future__ import annotations

import dataclasses
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

log = logging.getLogger("labapp.sqs")


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


def peek(sqs: SqsClient, queue_url: str, max_messages: int = 10) -> list[dict[str, Any]]:
    """Look at up to ten messages without consuming them (they are made visible again at once).

    A peek is still a receive: it raises ApproximateReceiveCount, and on a queue with a
    RedrivePolicy enough peeks move a message to the DLQ, exactly as on AWS.
    """
    reply = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
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


def _receive_batch(sqs: SqsClient, queue_url: str, n: int = MAX_BATCH) -> list[dict[str, Any]]:
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
            sqs, source_url, MAX_BATCH if max_messages is None else min(MAX_BATCH, max_messages - moved)
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
