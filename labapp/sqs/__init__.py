"""Talking to SQS: the guarded client, SQS's limits, and the EB-style queue pair the lab uses.

Names load on first use, so the worker can import `labapp.sqs.limits` without boto3: a deployed
worker bundle has only flask, waitress and pyyaml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labapp import lazy

__getattr__, __dir__, __all__ = lazy.exports(
    __name__,
    {
        "labapp.sqs.client": ("SqsClient", "is_local", "sqs_client"),
        "labapp.sqs.limits": (
            "MAX_ATTRIBUTES",
            "MAX_BATCH",
            "MAX_DELAY_S",
            "MAX_MESSAGE_BYTES",
            "check_attributes",
            "check_body",
        ),
        "labapp.sqs.queues": (
            "Depth",
            "QueuePair",
            "depth",
            "drain",
            "ensure_queues",
            "lookup_queues",
            "peek",
            "purge",
            "send_messages",
            "string_attributes",
        ),
        "labapp.sqs.redrive": ("move_messages", "move_selected", "redrive"),
    },
)

if TYPE_CHECKING:
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
