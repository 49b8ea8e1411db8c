"""Every SQS rule and number the lab relies on, in one place.

moto lets through some input that real SQS refuses; the kit refuses it too, so a lab behaves like
AWS (docs/aws-behaviour.md#sqs-limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from labapp.errors import LabError

# What real SQS refuses and moto lets through; the kit refuses it too, so a lab behaves like AWS.
MAX_MESSAGE_BYTES = 262_144  # body plus attributes, and also a whole SendMessageBatch
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


def check_delay(delay_seconds: Any) -> int:
    """Refuse a DelaySeconds SQS would refuse; return it."""
    if (
        isinstance(delay_seconds, bool)
        or not isinstance(delay_seconds, int)
        or not 0 <= delay_seconds <= MAX_DELAY_S
    ):
        raise LabError(f"DelaySeconds must be a whole number from 0 to {MAX_DELAY_S}; got {delay_seconds!r}.")
    return delay_seconds
