"""Notebook 04, failures, retries and the DLQ: its predictions, and what the worker's rules say of a body.

Each prediction is the keyword arguments of `course.predict`, so a cell reads
`course.predict(**course.nb04.DEFAULT_RECEIVES)`.
Facts: docs/aws-behaviour.md#dlq-max-retries, #dlq-max-receive-default, #retries-counted-by-sqs,
#dlq-retention, #dlq-age-from-move.
"""

from __future__ import annotations

import json
from typing import Any

from labapp.worker.scenarios import BadMessage, parse_body, read_job

DEFAULT_RECEIVES: dict[str, Any] = {
    "qid": "04.p1",
    "question": (
        "A worker environment made with EB's defaults gets a message that fails every time. "
        "How many POSTs does it get before SQS moves it to the dead-letter queue?"
    ),
    "choices": {
        "3": (
            "That is the claim. 3 is this lab's MaxRetries, chosen so that you wait seconds; it is nobody's "
            "default. EB's MaxRetries defaults to 10."
        ),
        "10": (
            "EB writes its MaxRetries option, 10 unless you change it, into the queue's RedrivePolicy as "
            "maxReceiveCount; and if a RedrivePolicy leaves maxReceiveCount out, SQS uses 10 too."
        ),
        "it comes back until it expires": (
            "That happens only on a queue without a DLQ. EB's own queue always has one, and its RedrivePolicy "
            "names a maxReceiveCount: MaxRetries. Even a RedrivePolicy that leaves it out gets 10 from SQS."
        ),
        "1: the daemon gives up after one failure": (
            "sqsd keeps no retry counter at all: it only makes the message visible again. SQS counts the "
            "receives and decides when to move it."
        ),
    },
    "answer": "10",
}

TWO_FAILURES: dict[str, Any] = {
    "qid": "04.p2",
    "question": (
        "Order C-77 meets a database that is down for its first POST only (503), then healthy. The CSV "
        "import has a row with a field missing, which the worker answers 400. MaxRetries is 3. "
        "How many POSTs does each get?"
    ),
    "choices": {
        "order 2, CSV 3 and then the DLQ": (
            "The order's second POST finds the database back and gets a 200, which ends its story. The "
            "CSV fails every time: 3 receives, and the fourth would pass maxReceiveCount, so SQS moves it."
        ),
        "order 3, CSV 3: every message is tried MaxRetries times": (
            "MaxRetries is an upper limit, not a number of tries. A 200 deletes the message at once, "
            "whatever its receive count."
        ),
        "order 2, CSV 1: a 400 goes straight to the DLQ": (
            "Notebook 03 showed it: sqsd does not read the class of the status, so a 400 is retried like a 503."
        ),
        "order 1: a 503 means the daemon waits and POSTs again at once": (
            "sqsd does not retry inside one receive. It makes the message visible again after "
            "ErrorVisibilityTimeout, and the next receive brings it back with a higher receive count."
        ),
    },
    "answer": "order 2, CSV 3 and then the DLQ",
}

DLQ_CLOCK: dict[str, Any] = {
    "qid": "04.p3",
    "question": (
        "A message was sent at 09:00, failed all morning, and moved to the DLQ at 11:00. The DLQ keeps "
        "messages 4 days (MessageRetentionPeriod). When does SQS delete it from the DLQ?"
    ),
    "choices": {
        "4 days after 11:00, the move": (
            "Most people expect this. But a standard queue keeps a message's original enqueue time when it "
            "moves it, so the DLQ's retention started counting at 09:00."
        ),
        "4 days after 09:00, the first send": (
            "A standard queue moves the message with its original enqueue time, so the DLQ's retention "
            "counts from the first send. Two hours of its 4 days were gone when it arrived."
        ),
        "never: a DLQ keeps what it gets": (
            "A DLQ is an ordinary queue with an ordinary retention period (at most 14 days). What nobody "
            "looks at in time is deleted."
        ),
    },
    "answer": "4 days after 09:00, the first send",
}

REDRIVE_POISON: dict[str, Any] = {
    "qid": "04.p4",
    "question": (
        "The broken CSV is in the DLQ and the worker is healthy. You redrive the DLQ. What happens to the CSV?"
    ),
    "choices": {
        "it is imported: a redrive gives it a fresh start": (
            "A redrive moves the message, not its data: the same body with the same missing field "
            "comes back, and the worker rejects it again."
        ),
        "it fails its retries again and lands in the DLQ again": (
            "The body is unchanged, so every POST is answered 400 again, and after maxReceiveCount more "
            "receives SQS moves it back. A redrive is a fix for the worker, never for the message."
        ),
        "SQS refuses to redrive a message that already passed maxReceiveCount": (
            "SQS redrives whatever is in the DLQ; it keeps no record that a message was there before."
        ),
    },
    "answer": "it fails its retries again and lands in the DLQ again",
}


def what_is_wrong(message: dict[str, Any] | str) -> str | None:
    """Return why the worker's rules reject a message (a DLQ message or its body), or None if they accept it."""
    body = message if isinstance(message, str) else str(message.get("Body", ""))
    try:
        read_job(parse_body(body.encode("utf-8")))
    except BadMessage as exc:
        return str(exc)
    return None


def import_ids(messages: list[dict[str, Any]]) -> list[str]:
    """Return the import_id of each CSV import among DLQ messages, oldest first."""
    bodies = [json.loads(m["Body"]) for m in messages]
    return [b["import_id"] for b in bodies if isinstance(b, dict) and b.get("type") == "csv_import"]
