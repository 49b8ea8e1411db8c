"""`labapp status`: the stack, whether its endpoint kept its queues, and every lab's queues on it.

Each notebook runs its own queues (`lab-NAME`), worker and daemon, so the stack's own queue is
idle while a learner works in a notebook; the table shows every `lab-*` pair on the endpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import requests
from botocore.exceptions import BotoCoreError, ClientError

from labapp.runtime.background import endpoint_health
from labapp.runtime.stack import WORKER_QUEUE
from labapp.runtime.supervisor import Health, loss_sentence
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import queue_names

#: The queues of the lab's stack and of every notebook's lab start so.
LAB_PREFIX = "lab-"
DLQ_SUFFIX = "-dlq"
COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclasses.dataclass(frozen=True)
class QueueRow:
    """One lab's queue pair as `status` shows it."""

    name: str
    visible: int
    in_flight: int
    delayed: int
    dead_letter: int | None  # None: the queue has no DLQ

    @property
    def whose(self) -> str:
        if self.name == WORKER_QUEUE:
            return "the stack's daemon (`labapp up`)"
        return f"notebook {self.name.removeprefix(LAB_PREFIX)}'s lab"


def _counts(sqs: SqsClient, name: str) -> list[int]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(COUNTS))["Attributes"]
    return [int(attrs.get(count, 0)) for count in COUNTS]


def lab_queues(sqs: SqsClient) -> list[QueueRow]:
    """Return every `lab-*` queue on the endpoint with its depths and its DLQ's depth."""
    names = queue_names(sqs, LAB_PREFIX)
    rows = []
    for name in names:
        if name.endswith(DLQ_SUFFIX):
            continue
        try:
            visible, in_flight, delayed = _counts(sqs, name)
            dlq = f"{name}{DLQ_SUFFIX}"
            dead = _counts(sqs, dlq)[0] if dlq in names else None
        except ClientError:
            continue  # a notebook deleted its queues meanwhile
        rows.append(QueueRow(name, visible, in_flight, delayed, dead))
    return rows


def print_queues(rows: list[QueueRow]) -> None:
    """Print the lab queues as a table."""
    print(f"{'queue':<28} {'visible':>8} {'in flight':>9} {'delayed':>8} {'DLQ':>6}  polled by")
    for row in rows:
        dead = "-" if row.dead_letter is None else str(row.dead_letter)
        print(f"{row.name:<28} {row.visible:>8} {row.in_flight:>9} {row.delayed:>8} {dead:>6}  {row.whose}")


def show_status(state: dict[str, Any]) -> int:
    """Print the running stack, what happened to its endpoint, and every lab's queues; return the exit code."""
    health = endpoint_health(state)
    note = loss_sentence(state)
    rows = [("endpoint", f"{state['backend']} at {state['endpoint_url']}")]
    if health is not Health.OK:
        print(f"{'endpoint':>18}: {rows[0][1]}")
        if health is Health.VANISHED:
            print(
                f"The SQS endpoint at {state['endpoint_url']} does not answer; the lab cannot reach its queues."
            )
        else:
            print(
                note
                or f"The SQS endpoint at {state['endpoint_url']} was restarted and lost the lab's queues."
            )
        print(
            "The lab makes its queues again within a few seconds once the endpoint answers; `labapp up` heals it now."
        )
        return 1
    try:
        health_info = requests.get(f"{state['worker_url']}/_lab/health", timeout=2).json()
        worker = f"up at {state['worker_url']}, ledger {health_info['ledger']}"
        daemon = health_info.get("daemon", "unknown")
    except (requests.RequestException, ValueError):
        worker, daemon = "NOT ANSWERING", "unknown"
    rows += [("worker", worker), ("daemon", f"{daemon}, polling {state['queue']}")]
    for key, value in rows:
        print(f"{key:>18}: {value}")
    if note:
        print(f"{'note':>18}: {note}")
    try:
        queues = lab_queues(sqs_client(state["endpoint_url"]))
    except (BotoCoreError, ClientError) as exc:
        print(f"Could not list the lab's queues: {exc}")
        return 1
    print()
    print_queues(queues)
    return 0
