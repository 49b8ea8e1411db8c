"""Every SQS rule and number the lab relies on, in one place.

moto lets through some input that real SQS refuses; the kit refuses it too, so a lab behaves like
AWS (docs/aws-behaviour.md#sqs-limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from labapp.errors import ConfigError, LabError, quoted

# What real SQS refuses and moto lets through; the kit refuses it too, so a lab behaves like AWS.
#: The largest message, body plus attributes: 1 MiB since 2025 (docs/aws-behaviour.md#sqs-message-size).
MAX_MESSAGE_BYTES = 1_048_576
#: The largest SendMessageBatch, all its entries together, whatever the queue's MaximumMessageSize.
MAX_BATCH_BYTES = 1_048_576
#: The lowest MaximumMessageSize a queue can have (1 KiB): a message this small fits every queue.
MIN_MESSAGE_SIZE_SETTING = 1_024
#: Messages per ReceiveMessage, SendMessageBatch or DeleteMessageBatch.
MAX_BATCH = 10
#: The longest long poll SQS allows (WaitTimeSeconds); sqsd waits this long.
MAX_WAIT_TIME_S = 20
#: DelaySeconds of a message or a queue.
MAX_DELAY_S = 900
#: The longest visibility timeout (12 hours).
MAX_VISIBILITY_S = 43_200
#: The longest a queue keeps a message (MessageRetentionPeriod, 14 days).
MAX_RETENTION_S = 1_209_600
#: A new queue's VisibilityTimeout when none is given.
DEFAULT_VISIBILITY_S = 30


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
            raise LabError(
                f"Attribute name {quoted(name, 30)} is longer than {MAX_ATTRIBUTE_NAME} characters."
            )
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise LabError(
                f"Attribute name {quoted(name)} is invalid: use letters, digits, '_', '-' and '.'."
            )
        if name.lower().startswith(("aws.", "amazon.")):
            raise LabError(
                f"Attribute name {quoted(name)} is reserved: names starting AWS. or Amazon. belong to AWS."
            )
        if name.startswith(".") or name.endswith("."):
            raise LabError(f"Attribute name {quoted(name)} may not start or end with '.'.")
        if ".." in name:
            raise LabError(f"Attribute name {quoted(name)} may not contain '..'.")
        if str(attribute.get("DataType", "")).startswith("Binary"):
            if not attribute.get("BinaryValue"):
                raise LabError(f"Attribute {quoted(name)} is empty; SQS needs a value.")
        else:
            value = str(attribute.get("StringValue", ""))
            if value == "":
                raise LabError(f"Attribute {quoted(name)} is empty; SQS needs a value.")
            _check_text(value, f"Attribute {quoted(name)}")
    return _attribute_bytes(attributes)


def check_body(body: str, attribute_bytes: int = 0, limit: int = MAX_MESSAGE_BYTES) -> int:
    """Refuse a message body SQS would refuse, naming the rule; return the message's size in bytes.

    `limit` is the queue's MaximumMessageSize when that is lower than SQS's own 1 MiB.
    """
    if not isinstance(body, str):
        raise LabError(f"A message body must be text (str); got {type(body).__name__}.")
    if body == "":
        raise LabError("The message body is empty; SQS needs at least one character.")
    _check_text(body, "The message body")
    size = len(body.encode("utf-8")) + attribute_bytes
    check_size(size, limit)
    return size


def check_size(size: int, limit: int = MAX_MESSAGE_BYTES) -> None:
    """Refuse a message of `size` bytes (body plus attributes) over SQS's limit or the queue's lower one."""
    if size <= min(limit, MAX_MESSAGE_BYTES):
        return
    if limit < MAX_MESSAGE_BYTES:
        raise LabError(
            f"The message is {size:,} bytes with its attributes; this queue's MaximumMessageSize "
            f"is {limit:,} (SQS's own limit is {MAX_MESSAGE_BYTES:,})."
        )
    raise LabError(
        f"The message is {size:,} bytes with its attributes; SQS allows at most {MAX_MESSAGE_BYTES:,}."
    )


def check_delay(delay_seconds: Any) -> int:
    """Refuse a DelaySeconds SQS would refuse; return it."""
    if (
        isinstance(delay_seconds, bool)
        or not isinstance(delay_seconds, int)
        or not 0 <= delay_seconds <= MAX_DELAY_S
    ):
        raise LabError(
            f"DelaySeconds must be a whole number from 0 to {MAX_DELAY_S}; got {quoted(delay_seconds)}."
        )
    return delay_seconds


def check_wait_time(wait_time_seconds: Any, what: str = "wait_time_seconds") -> int:
    """Refuse a long-poll wait SQS would refuse (WaitTimeSeconds, 0 to 20); return it."""
    if isinstance(wait_time_seconds, bool) or not isinstance(wait_time_seconds, int):
        raise ConfigError(f"{what} must be a whole number of seconds; got {wait_time_seconds!r}.")
    if not 0 <= wait_time_seconds <= MAX_WAIT_TIME_S:
        raise ConfigError(
            f"{what} must be from 0 to {MAX_WAIT_TIME_S} (SQS's long-poll limit); got {wait_time_seconds}."
        )
    return wait_time_seconds
