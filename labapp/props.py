"""The props of single notebooks: a payment gateway (05), a mystery (09), the AWS bundle and role (10).

The notebooks reach these through `labapp.lessons`, e.g. `lessons.iam_gaps(policy)`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labapp.config import AWS_DEFAULTS, SqsdOptions

if TYPE_CHECKING:
    from labapp.lessons import LessonLab


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


# -- 09: a mystery to hunt ------------------------------------------------------------------------------
CAUSES = {
    "daemon-stopped": "The daemon is not running, so nobody receives the messages.",
    "worker-rejects": "The worker answers every POST with an error, so each message is retried, then dead-lettered.",
    "worker-hangs": "The worker never answers, so every POST waits for InactivityTimeout.",
    "wrong-path": "The daemon posts to a path the worker does not serve.",
}


def start_mystery(lab: LessonLab, orders: int = 6) -> list[str]:
    """Break the lab the way a real deploy can, then send a small flash sale; return the message ids."""
    from labapp import lessons  # lessons re-exports this module

    # A handler that reads the form field of the seed article: real sqsd sends a raw body, so
    # every message is rejected. The symptom is "nothing gets processed".
    lessons.install_handler(lab, lessons.article_handler)
    lab.mystery = "worker-rejects"
    return lab.send([{"type": "order", "order_id": f"sale-{n}", "amount": 10 + n} for n in range(orders)])


# -- 10: taking it to AWS ---------------------------------------------------------------------------------
def ebextensions_yaml(options: SqsdOptions, only_changed: bool = True) -> str:
    """Return an `.ebextensions/*.config` text that sets these sqsd options."""
    import yaml

    settings = options.as_option_settings()
    if only_changed:
        namespace, values = next(iter(settings.items()))
        defaults = AWS_DEFAULTS.as_option_settings()[namespace]
        settings = {namespace: {k: v for k, v in values.items() if defaults.get(k) != v}}
    # Whole numbers as numbers, the way people write them in .ebextensions.
    typed = {ns: {k: int(v) if v.isdigit() else v for k, v in opts.items()} for ns, opts in settings.items()}
    return str(yaml.safe_dump({"option_settings": typed}, sort_keys=False))


# What a worker instance's role must allow (REFERENCE.md §7): the daemon's own calls, periodic
# tasks (the leader enqueues them, elected through a DynamoDB table) and its CloudWatch metrics.
WORKER_IAM_NEEDS = {
    "sqs:ReceiveMessage": "the daemon receives messages",
    "sqs:DeleteMessage": "the daemon deletes a message after a 200",
    "sqs:ChangeMessageVisibility": "the daemon sets ErrorVisibilityTimeout after a failure",
    "sqs:SendMessage": "the leader enqueues periodic tasks from cron.yaml",
    "dynamodb:*Item": "instances elect the periodic-task leader through a DynamoDB table",
    "cloudwatch:PutMetricData": "the daemon publishes its metrics",
}


def _allows(pattern: str, needed: str) -> bool:
    import fnmatch

    service, _, action = needed.partition(":")
    if needed == "dynamodb:*Item":
        return pattern.lower() in ("*", "dynamodb:*") or (
            pattern.lower().startswith("dynamodb:") and pattern.lower().endswith("item")
        )
    return fnmatch.fnmatch(needed.lower(), pattern.lower()) and bool(service and action)


def iam_gaps(policy: Mapping[str, Any]) -> list[str]:
    """Return the permissions a worker needs that this policy document does not allow."""
    allowed: list[str] = []
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        allowed.extend([actions] if isinstance(actions, str) else list(actions))
    return [need for need in WORKER_IAM_NEEDS if not any(_allows(p, need) for p in allowed)]
