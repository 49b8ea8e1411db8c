"""Notebook 06, concurrency and timeouts: its predictions, as keyword arguments of `course.predict`.

A cell reads `course.predict(**course.nb06.CONCURRENCY_OPTION)`, so the words live here, not in a long
cell. Facts: docs/aws-behaviour.md#opt-names-invalid, #opt-http-connections, #opt-inactivity-timeout,
#opt-visibility-timeout, #nginx-504, #timeout-inactivity.
"""

from __future__ import annotations

from typing import Any

from labapp.course.lab import Lab
from labapp.runtime.wait import wait_until

CONCURRENCY_OPTION: dict[str, Any] = {
    "qid": "06.p1",
    "question": (
        "The article says that the option MaxConcurrentAPIConnections sets how many messages the daemon "
        "handles at once, and that it defaults to 1. What does EB's option list say?"
    ),
    "choices": {
        "it exists, default 1: one message at a time": (
            "That is the claim. No option of that name exists in aws:elasticbeanstalk:sqsd, and one "
            "message at a time was never the default."
        ),
        "it exists, default 50": "The number is right, the name is not: EB's option is called HttpConnections.",
        "no such option: HttpConnections, default 50": (
            "The option is HttpConnections, from 1 to 100, and by default the daemon keeps up to 50 POSTs "
            "open at once on each instance."
        ),
    },
    "answer": "no such option: HttpConnections, default 50",
}

TEN_CONNECTIONS: dict[str, Any] = {
    "qid": "06.p2",
    "question": (
        "Four orders of 0.25 s each. With HttpConnections=1 they take a little over 1 s. "
        "About how many seconds will they take with HttpConnections=10?"
    ),
    "answer": 0.45,
    "tolerance": 0.3,
    "unit": "s",
    "low": "Each order alone needs 0.25 s of work, so no sale of them can end sooner than that.",
    "high": (
        "With 10 connections the daemon POSTs the orders side by side, so the sale takes about as long as "
        "one or two orders, plus a moment for receiving."
    ),
    "right": (
        "The orders run side by side: the sale takes the time of one order, or two when a receive "
        "brings fewer than all four, instead of four."
    ),
}

SIXTY_SECONDS: dict[str, Any] = {
    "qid": "06.p3",
    "question": (
        "The article says sqsd's HTTP timeout is 60 s. A worker environment runs with EB's defaults, "
        "and one job takes 90 s. What happens?"
    ),
    "choices": {
        "sqsd gives up at 60 s: that is its timeout": (
            "sqsd's wait for an answer is InactivityTimeout, 299 s by default; nothing in sqsd stops at 60 s."
        ),
        "it works: InactivityTimeout is 299 s": (
            "sqsd would wait, but it is not the only one waiting. On EB nginx sits between sqsd and your "
            "app, and nginx gives up first."
        ),
        "nginx answers 504 at 60 s; sqsd counts a failure and retries": (
            "nginx's proxy_read_timeout defaults to 60 s. sqsd sees the 504, sets ErrorVisibilityTimeout, "
            "and the job runs again, while the first run may still be going."
        ),
        "SQS hands the message out again at 30 s": (
            "30 s is a bare queue's visibility timeout. sqsd asks for its own VisibilityTimeout, 300 s, on "
            "every receive."
        ),
    },
    "answer": "nginx answers 504 at 60 s; sqsd counts a failure and retries",
}

SLOW_ANSWER: dict[str, Any] = {
    "qid": "06.p4",
    "question": (
        "The daemon waits 1 s for an answer (InactivityTimeout), the panorama takes 1.5 s, and MaxRetries "
        "is 1. Where does the message end up, and is the panorama made?"
    ),
    "choices": {
        "deleted: the worker finished the panorama": (
            "The worker finished, but nobody was listening any more: the daemon had already counted the "
            "POST as failed, so it never deleted the message."
        ),
        "in the DLQ, and the panorama is made": (
            "The daemon stopped waiting after 1 s and counted a failure; with MaxRetries 1 the next receive "
            "moved the message to the DLQ. The worker went on and finished anyway: a job that worked, in the DLQ."
        ),
        "in the DLQ, and the panorama is not made: the daemon cancels the work": (
            "The daemon only closes its connection. Your handler does not notice and goes on working."
        ),
    },
    "answer": "in the DLQ, and the panorama is made",
}

SHORT_VISIBILITY: dict[str, Any] = {
    "qid": "06.p5",
    "question": (
        "The queue's own visibility timeout is 30 s, the daemon asks for VisibilityTimeout 1 s, it waits up "
        "to 10 s for an answer, and the poster takes 3 s. How many POSTs does the poster get?"
    ),
    "choices": {
        "one: the queue's 30 s hides it long enough": (
            "The daemon passes its own VisibilityTimeout with every receive, and that replaces the queue's."
        ),
        "more than one: it is POSTed again while the first POST runs": (
            "After 1 s the message is visible again although the first POST is still running, so the "
            "daemon receives it once more and POSTs it again."
        ),
        "one, then a timeout": "The daemon waits up to 10 s, and the poster answers after 3 s: no timeout.",
    },
    "answer": "more than one: it is POSTed again while the first POST runs",
}


def wait_for_worker(lab: Lab, timeout: float = 10) -> None:
    """Wait until the lab's worker has no request in progress (it goes on after the daemon gives up)."""
    wait_until(lambda: lab.state.concurrency.snapshot()["now"] == 0, timeout, "the worker to finish")
