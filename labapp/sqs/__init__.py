"""Talking to SQS: the guarded client, SQS's limits, and the EB-style queue pair the lab uses."""

from labapp.sqs.client import SqsClient, is_local, sqs_client
from labapp.sqs.limits import (
    MAX_ATTRIBUTES,
    MAX_BATCH,
    MAX_DELAY_S,
    MAX_MESSAGE_BYTES,
    check_attributes,
    check_body,
)
from labapp.sqs.queues import (
    Depth,
    QueuePair,
    depth,
    drain,
    ensure_queues,
    lookup_queues,
    peek,
    purge,
    send_messages,
    string_attributes,
)
from labapp.sqs.redrive import move_messages, move_selected, redrive

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_BATCH",
    "MAX_DELAY_S",
    "MAX_MESSAGE_BYTES",
    "Depth",
    "QueuePair",
    "SqsClient",
    "check_attributes",
    "check_body",
    "depth",
    "drain",
    "ensure_queues",
    "is_local",
    "lookup_queues",
    "move_messages",
    "move_selected",
    "peek",
    "purge",
    "redrive",
    "send_messages",
    "sqs_client",
    "string_attributes",
]
