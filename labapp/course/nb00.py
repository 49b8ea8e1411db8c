"""Notebook 00, setup check: its one prediction.

A prediction is the keyword arguments of `course.predict`, so a cell reads
`course.predict(**course.nb00.FIRST_ORDER)` and does not show the answer before it is asked.
Facts: docs/aws-behaviour.md#status-200-deletes, #opt-max-retries.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIRST_ORDER"]

FIRST_ORDER: dict[str, Any] = {
    "qid": "00.p1",
    "question": "The daemon is running. You send one order and wait until the lab is idle. What does lab.depth() show then?",
    "choices": {
        "visible=1": "A message waits as visible only while nobody receives it. The daemon is running, so it receives the order within a second.",
        "in_flight=1": "In flight means received and not yet deleted. The worker answers 200, and on a 200 the daemon deletes the message.",
        "all zero": "The daemon received the order, POSTed it to the worker, got 200 and deleted it. The queue is empty again.",
        "dead_letter=1": "A message reaches the dead-letter queue only after failing MaxRetries times (3 in the lab). A good order succeeds the first time.",
    },
    "answer": "all zero",
}
