"""Watching the lab's SQS endpoint: notice when it vanishes or comes back empty, and heal the stack.

The emulators keep queues and messages in memory (docs/aws-behaviour.md#emu-in-memory): an
emulator that is killed and started again answers on the same port with no queues at all, and a
daemon polling the old queue only ever hears NonExistentQueue. Real SQS never loses a queue that
way. So the stack plants a marker, a queue with a name of its own, when it starts; a check that
finds the endpoint answering but the marker gone knows the endpoint restarted, and knows how
many messages were lost from the last count it made.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labapp.sqs.client import SqsClient
from labapp.sqs.queues import queue_names

log = logging.getLogger("labapp.runtime")

#: Every stack's marker queue starts so; the rest of its name is the stack's own.
MARKER_PREFIX = "labapp-stack-"
#: The marker's tag: when the stack that planted it started (UTC).
MARKER_TAG = "labapp:stack-started"
#: How often the stack's supervisor looks at its endpoint.
CHECK_INTERVAL_S = 2.0
COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
NON_EXISTENT = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


class Health(str, enum.Enum):
    """What a look at the endpoint found."""

    OK = "ok"
    RESTARTED = "restarted"  # it answers, but without the marker: an empty endpoint
    VANISHED = "vanished"  # nothing answers


def plant_marker(sqs: SqsClient) -> str:
    """Create this stack's marker queue and return its name."""
    name = f"{MARKER_PREFIX}{uuid.uuid4().hex[:12]}"
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    sqs.create_queue(QueueName=name, tags={MARKER_TAG: started})
    return name


def check(sqs: SqsClient, marker: str) -> Health:
    """Return whether the endpoint answers and still has the marker."""
    try:
        sqs.get_queue_url(QueueName=marker)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NON_EXISTENT:
            return Health.RESTARTED
        raise
    except BotoCoreError:
        return Health.VANISHED
    return Health.OK


def messages_held(sqs: SqsClient) -> int:
    """Return how many messages the endpoint's queues hold: visible, in flight and delayed."""
    total = 0
    for name in queue_names(sqs):
        if name.startswith(MARKER_PREFIX):
            continue
        with contextlib.suppress(ClientError):  # a notebook may delete its queue meanwhile
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(COUNTS))["Attributes"]
            total += sum(int(counts.get(count, 0)) for count in COUNTS)
    return total


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def loss_sentence(state: dict[str, Any]) -> str | None:
    """Return what the state file says about a restart or vanished endpoint, or None if there was none."""
    endpoint = state.get("endpoint_url", "the endpoint")
    lost = state.get("messages_lost")
    if state.get("vanished_at") is not None:
        held = state.get("held", {}).get("messages")
        gone = "" if held is None else f"; the {held} messages it held are gone with it"
        return (
            f"The SQS endpoint at {endpoint} stopped answering at {_when(state['vanished_at'])}{gone} "
            "(an in-memory emulator, unlike SQS)."
        )
    if state.get("restarted_at") is not None:
        return (
            f"The SQS endpoint at {endpoint} was restarted at {_when(state['restarted_at'])}; the {lost} "
            "messages it held are gone (an in-memory emulator, unlike SQS)."
        )
    return None


class Supervisor:
    """Look at the stack's endpoint every few seconds; restart what the stack owns, heal the rest.

    `stack` is a started Stack; `report` receives the fields of the state file that changed
    (held, vanished_at, restarted_at, messages_lost, marker); `interval` is seconds between looks.
    """

    def __init__(
        self, stack: Any, report: Callable[[dict[str, Any]], None], interval: float = CHECK_INTERVAL_S
    ) -> None:
        self.stack = stack
        self.report = report
        self.interval = interval
        self.marker = plant_marker(stack.sqs)
        self.held: int | None = None
        self.vanished_at: float | None = None
        self.report({"marker": self.marker})

    def check_once(self) -> Health:
        """Look once: count the messages, or record the loss and heal the stack."""
        endpoint = self.stack.endpoint
        if endpoint is not None and endpoint.emulator is not None and not endpoint.emulator.alive:
            # The stack started this emulator, so it starts it again; it comes back empty.
            log.warning(
                "supervisor: the %s endpoint the lab started died; starting it again", endpoint.backend
            )
            endpoint.restart()
        try:
            health = check(self.stack.sqs, self.marker)
            if health is Health.OK:
                held = messages_held(self.stack.sqs)
        except (BotoCoreError, ClientError) as exc:
            log.warning("supervisor: could not look at the endpoint (%s)", exc)
            return Health.VANISHED
        if health is Health.OK:
            if held != self.held:
                self.held = held
                self.report({"held": {"messages": held, "at": time.time()}})
        elif health is Health.VANISHED:
            if self.vanished_at is None:
                self.vanished_at = time.time()
                log.warning("supervisor: nothing answers at %s", self.stack.endpoint.url)
                self.report({"vanished_at": self.vanished_at})
        else:
            self._heal()
        return health

    def _heal(self) -> None:
        lost = self.held or 0
        log.warning(
            "supervisor: %s was restarted; %d messages are gone; making the queues again",
            self.stack.endpoint.url,
            lost,
        )
        self.stack.recreate_queues()
        self.marker = plant_marker(self.stack.sqs)
        self.held, self.vanished_at = 0, None
        self.report(
            {
                "marker": self.marker,
                "restarted_at": time.time(),
                "messages_lost": lost,
                "vanished_at": None,
                "held": {"messages": 0, "at": time.time()},
                "queue_url": self.stack.queues.url,
                "dlq_url": self.stack.queues.dlq_url,
                "endpoint_pid": self.stack.endpoint.pid,
            }
        )

    def run(self, stop: threading.Event) -> None:
        """Look every `interval` seconds until stop is set."""
        while not stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:  # the watcher must outlive any one bad look, so it logs and goes on
                log.exception("supervisor: the check failed; trying again in %.0f s", self.interval)

    def remove_marker(self) -> None:
        """Delete the marker queue, so a stopped stack leaves nothing behind."""
        with contextlib.suppress(BotoCoreError, ClientError):
            url = self.stack.sqs.get_queue_url(QueueName=self.marker)["QueueUrl"]
            self.stack.sqs.delete_queue(QueueUrl=url)
