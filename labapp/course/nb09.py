"""Notebook 09, troubleshooting: a mystery to hunt, broken the way a real deploy can be."""

from __future__ import annotations

from typing import Any

from labapp.course.handlers import article_handler, install_handler
from labapp.course.lab import Lab

# -- 09: predictions before the claim checks (docs/aws-behaviour.md#claim-queuedepth, #log-file) ------
QUEUE_DEPTH: dict[str, Any] = {
    "qid": "09.p1",
    "question": "EB's autoscaling trigger takes a MeasureName. Which queue metric can it scale the workers on?",
    "choices": {
        "QueueDepth": (
            "No metric has that name: SQS reports ApproximateNumberOfMessagesVisible, and the trigger does "
            "not take that one either."
        ),
        "ApproximateNumberOfMessagesVisible": (
            "It is the right metric to watch, but the trigger lists only the instances' own metrics (CPU, "
            "network, disk, latency, requests, healthy hosts)."
        ),
        "None: the trigger knows no queue metric": (
            "The trigger measures the instances. Scaling on the queue takes an alarm of your own on "
            "the queue's metrics, or target tracking on the backlog per instance (notebook 07)."
        ),
    },
    "answer": "None: the trigger knows no queue metric",
}
SQSD_LOG: dict[str, Any] = {
    "qid": "09.p2",
    "question": "A worker instance misbehaves. In which file do you find what the daemon sent and what came back?",
    "choices": {
        "/var/log/eb-engine.log": (
            "That is the platform engine's log: deployments and configuration changes, not messages."
        ),
        "/var/log/aws-sqsd/default.log": (
            "One line per POST, with the message id, the status or socket error and the receive "
            "count. The lab writes the same lines."
        ),
        "In my application's log": (
            "Your application's log says why it answered what it did. What the daemon sent, when it "
            "retried and what came back is in the daemon's own log."
        ),
    },
    "answer": "/var/log/aws-sqsd/default.log",
}

# -- 09: a mystery to hunt ------------------------------------------------------------------------------
#: What could explain the morning after the deploy: causes, each of which would leave other evidence.
CAUSES = {
    "daemon-stopped": "The deploy stopped the daemon, so nothing receives the orders.",
    "bad-orders": "The web tier began sending malformed orders, and the worker rightly refuses them.",
    "form-body": (
        "The new handler looks for the message in a form field, but sqsd POSTs the body as it is, so "
        "the handler finds nothing and answers 400."
    ),
    "short-timeout": "The deploy cut InactivityTimeout below the work, so sqsd gives up on every POST.",
    "wrong-path": "The deploy changed HttpPath, so the daemon posts where no handler listens.",
}


def start_mystery(lab: Lab, orders: int = 6) -> list[str]:
    """Break the lab the way a real deploy can, then send a small flash sale; return the message ids."""
    # A handler that reads the form field of the seed article: real sqsd sends a raw body, so
    # every message is rejected. The symptom is "nothing gets processed".
    install_handler(lab, article_handler)
    lab.mystery = "form-body"
    return lab.send([{"type": "order", "order_id": f"sale-{n}", "amount": 10 + n} for n in range(orders)])
