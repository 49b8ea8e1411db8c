"""Notebook 09, troubleshooting: a mystery to hunt, broken the way a real deploy can be."""

from __future__ import annotations

from labapp.course.handlers import article_handler, install_handler
from labapp.course.lab import Lab

# -- 09: a mystery to hunt ------------------------------------------------------------------------------
CAUSES = {
    "daemon-stopped": "The daemon is not running, so nobody receives the messages.",
    "worker-rejects": "The worker answers every POST with an error, so each message is retried, then dead-lettered.",
    "worker-hangs": "The worker never answers, so every POST waits for InactivityTimeout.",
    "wrong-path": "The daemon posts to a path the worker does not serve.",
}


def start_mystery(lab: Lab, orders: int = 6) -> list[str]:
    """Break the lab the way a real deploy can, then send a small flash sale; return the message ids."""
    # A handler that reads the form field of the seed article: real sqsd sends a raw body, so
    # every message is rejected. The symptom is "nothing gets processed".
    install_handler(lab, article_handler)
    lab.mystery = "worker-rejects"
    return lab.send([{"type": "order", "order_id": f"sale-{n}", "amount": 10 + n} for n in range(orders)])
