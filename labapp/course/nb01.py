"""Notebook 01, queues and messages: a web tier in front of the lab's queue, and the predictions.

A prediction is the keyword arguments of `course.predict`, so a cell reads
`course.predict(**course.nb01.LOAD_TEST)` and does not show the answer before it is asked.
Facts: docs/aws-behaviour.md#status-202-redelivered, #at-least-once, #sqs-default-visibility,
#opt-visibility-timeout.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Flask

from labapp import webtier
from labapp.course.lab import Lab
from labapp.runtime.servers import HttpServer
from labapp.worker.ledger import Ledger

__all__ = [
    "FLASH_SALE",
    "LOAD_TEST",
    "NOBODY_DELETED",
    "VISIBILITY_30",
    "WORK_MS",
    "WebTierRun",
    "start_web_tier",
]

#: How long one order's work takes in notebook 01, in either tier: long enough to see, short
#: enough that the notebook runs in seconds.
WORK_MS = 100


@dataclasses.dataclass
class WebTierRun:
    """The web tier of a notebook: its server (`url`) and app; `close()` stops both."""

    server: HttpServer
    app: Flask

    @property
    def url(self) -> str:
        """The web tier's base URL, e.g. http://127.0.0.1:PORT."""
        return self.server.url

    def close(self) -> None:
        """Stop serving and close the ledger files."""
        self.server.stop()
        webtier.of(self.app).close()


def start_web_tier(lab: Lab, work_ms: int = WORK_MS) -> WebTierRun:
    """Start a web tier that takes orders in the request or sends them to the lab's queue.

    Its own ledger starts empty; it also reads the worker's ledger, so an order's status URL
    says "applied" once the worker has done it. `lab.stop()` stops it.
    """
    path = lab.ledger_path.with_name(f"lab-{lab.name}-web-ledger.sqlite")
    ledger = Ledger(path)
    ledger.clear()  # each run starts from no orders, as the worker's ledger does
    ledger.close()
    app = webtier.create_app(
        lab.sqs, lab.queues.url, ledger_path=path, worker_ledger_path=lab.ledger_path, work_ms=work_ms
    )
    return lab.own(WebTierRun(webtier.serve(app).start(), app))


# -- the predictions, in the order the notebook asks them ----------------------------------------
LOAD_TEST: dict[str, Any] = {
    "qid": "01.p1",
    "question": "8 clients load each endpoint. Each order takes 100 ms of work, and the web tier has 4 threads. What p50 do you expect?",
    "choices": {
        "both about 100 ms": "The async endpoint does not do the work: it only sends a message to SQS, which takes milliseconds. The work happens later, in the worker.",
        "sync about 200 ms, async far less": "8 clients share 4 threads, so a sync request often waits for one ahead of it: about 2 x 100 ms. The async endpoint only enqueues.",
        "sync about 100 ms, async far less": "The async part is right. But 8 clients share 4 threads, so half of the sync requests first wait for a thread, then do their own 100 ms.",
        "sync about 800 ms": "That would be one order at a time. The web tier has 4 threads, so it works on four orders at once.",
    },
    "answer": "sync about 200 ms, async far less",
}

FLASH_SALE: dict[str, Any] = {
    "qid": "01.p2",
    "question": "Customers arrive at 80 a second for 1 s; each tier can do 40 orders a second. What happens?",
    "choices": {
        "both endpoints slow down the same way": "The work is the same, but who waits is not. The async endpoint answers as soon as SQS has the order; the orders wait in the queue, not the customers.",
        "sync latency climbs; async stays flat while the queue grows, then drains": "Each sync customer waits for all those ahead of them. The async customers get their 202 at once; the queue takes the burst and the worker works it off at its own pace.",
        "the async endpoint loses the orders the worker cannot take": "SQS keeps every message until a worker deletes it. The orders the worker cannot take at once wait in the queue and are done a moment later.",
        "sync requests fail at once": "A sync request waits for a free thread; it fails only if the wait passes the client's timeout (10 s here). The waits grow instead.",
    },
    "answer": "sync latency climbs; async stays flat while the queue grows, then drains",
}

NOBODY_DELETED: dict[str, Any] = {
    "qid": "01.p3",
    "question": "Your worker held the message and never deleted it. 2.5 s later (you asked for 2 s) you receive again. What do you get?",
    "choices": {
        "nothing: receiving took it off the queue": "Receiving only hides a message. It stays in the queue until someone deletes it.",
        "the same message, with receive count 2": "The 2 s are over, so SQS hands it out again and counts a second receive.",
        "a copy with a new MessageId": "It is the same message, with the same MessageId. Only the receipt handle is new: each receive gets its own.",
        "nothing until 30 s have passed": "30 s is the queue's own default, but you passed VisibilityTimeout=2 with the receive, and that wins for this receive.",
    },
    "answer": "the same message, with receive count 2",
}

VISIBILITY_30: dict[str, Any] = {
    "qid": "01.p4",
    "question": "A new SQS queue has its own VisibilityTimeout, and sqsd has a VisibilityTimeout option. Which of them is 30 s?",
    "choices": {
        "both: sqsd uses the queue's setting": "sqsd does not read the queue's setting: it asks for its own VisibilityTimeout with every receive, as you did with VisibilityTimeout=2.",
        "only the queue's; sqsd asks for 300 s": "A bare queue hides a received message for 30 s, and sqsd passes its own option, 300 s by default, with every receive.",
        "neither: both are 300 s": "A queue you create without settings hides a received message for 30 s. 300 s is sqsd's option.",
        "only sqsd's; the queue's is 300 s": "The other way round: 30 s is the queue's default, 300 s sqsd's.",
    },
    "answer": "only the queue's; sqsd asks for 300 s",
}
