"""Notebook 05, idempotency: its predictions, a payment gateway that charges every call, a store of done keys.

Each prediction is the keyword arguments of `course.predict` (or `predict_number`), so a cell reads
`course.predict(**course.nb05.SENT_TWICE)`. Facts: docs/aws-behaviour.md#at-least-once,
#status-other-retried, #retries-counted-by-sqs.
"""

from __future__ import annotations

import threading
from typing import Any

SENT_TWICE: dict[str, Any] = {
    "qid": "05.p1",
    "question": (
        "The web tier timed out talking to SQS and sent order E-1 again, so the queue holds it twice. "
        "The handler charges every order it is given. How many times is the customer charged?"
    ),
    "choices": {
        "once: SQS drops the second copy": (
            "A standard queue does not compare bodies: two SendMessage calls make two messages, each with "
            "its own message id, and both are delivered."
        ),
        "once: the daemon knows it POSTed this order": (
            "sqsd keeps no memory of what it POSTed. Each message is POSTed on its own, and the body is "
            "passed through unread."
        ),
        "twice": "Two messages, two POSTs, two charges: the queue and the daemon did exactly what they promise.",
    },
    "answer": "twice",
}

CHARGED_THEN_FAILED: dict[str, Any] = {
    "qid": "05.p2",
    "question": (
        "This handler charges the card, then loses its database and answers 500, but only on the first "
        "delivery. How many times is order E-2 charged?"
    ),
    "choices": {
        "never: the 500 undoes the charge": (
            "An HTTP status undoes nothing. The charge happened at the payment provider before the answer "
            "was written."
        ),
        "once: the daemon saw that the charge went through": (
            "The daemon sees only the status. A 500 is a failure, so the message comes back, and the "
            "handler does everything again."
        ),
        "twice": (
            "The 500 made the message come back after ErrorVisibilityTimeout, and the second delivery "
            "charged again before it answered 200."
        ),
    },
    "answer": "twice",
}

KIT_LEDGER: dict[str, Any] = {
    "qid": "05.p3",
    "question": "The kit's worker gets order E-3 three times. How many times does its ledger apply the order?",
    "answer": 1,
    "tolerance": 0,
    "low": "Every copy is a real order to the worker: the first must be applied.",
    "high": (
        "The ledger's primary key is the order id: the second and third copies find it there, and the "
        "worker answers 200 without doing the work again."
    ),
    "right": "Once: three POSTs, one effect. The ledger remembers the order id, not the message id.",
}


# -- 05: an outside effect that must happen once ------------------------------------------------------
class PaymentGateway:
    """A stand-in for a card processor: it charges whatever it is asked to, duplicates included."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.charges: list[tuple[str, float]] = []

    def charge(self, order_id: str, amount: float) -> None:
        """Charge an order (every call is a real charge)."""
        with self._lock:
            self.charges.append((order_id, amount))

    def total(self, order_id: str | None = None) -> float:
        """Return the money charged, for one order or for all."""
        with self._lock:
            return sum(amount for oid, amount in self.charges if order_id in (None, oid))

    def count(self, order_id: str) -> int:
        """Return how many times an order was charged."""
        with self._lock:
            return sum(1 for oid, _ in self.charges if oid == order_id)


class DoneStore:
    """Remember business ids, like a table with a conditional put: add_if_new is atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()

    def add_if_new(self, key: str) -> bool:
        """Record key; return True only for the first caller (the one that should do the work)."""
        with self._lock:
            if key in self._keys:
                return False
            self._keys.add(key)
            return True

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)
