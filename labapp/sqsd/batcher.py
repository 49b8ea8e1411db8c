"""Deletes and visibility changes, up to ten per SQS call, sent from a thread of their own.

sqsd deletes in batches of ten (docs/aws-behaviour.md#delete-batched) but changes visibility one
message at a time; here both are batched. A batch goes out when ten entries wait or shortly after
the first one arrived. When SQS refuses some entries of a batch, each of those is tried once more
on its own; whatever still fails is reported to its entry, never dropped silently (a failed
delete means a duplicate later, a failed visibility change a later retry: nothing is lost).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labapp.sqs.client import SqsClient
from labapp.sqs.limits import MAX_BATCH

FLUSH_AFTER_S = 0.05  # sqsd waits up to 2 s; a short wait costs only calls when the queue is quiet

log = logging.getLogger("labapp.daemon")


@dataclasses.dataclass(slots=True)
class Entry:
    """One message to delete or re-time; `done` is told None on success, or the error."""

    message_id: str
    receipt_handle: str
    queue_url: str
    done: Callable[[Exception | None], None]
    visibility: int = 0


Outcomes = list[tuple[Entry, Exception | None]]
Send = Callable[[SqsClient, str, list[Entry]], Outcomes]


def _batched(
    entries: list[Entry], batch: Callable[[list[dict[str, Any]]], Any], single: Callable[[Entry], Any]
) -> Outcomes:
    """Send the entries in one batch call, then each refused entry once more on its own."""
    try:
        reply = batch([{"Id": str(i), "ReceiptHandle": e.receipt_handle} for i, e in enumerate(entries)])
    except (BotoCoreError, ClientError):
        refused = set(range(len(entries)))
    else:
        refused = {int(failed["Id"]) for failed in reply.get("Failed", [])}
    outcomes: Outcomes = []
    for i, entry in enumerate(entries):
        error: Exception | None = None
        if i in refused:
            try:
                single(entry)
            except (BotoCoreError, ClientError) as exc:
                error = exc
        outcomes.append((entry, error))
    return outcomes


def delete_batch(sqs: SqsClient, queue_url: str, entries: list[Entry]) -> Outcomes:
    """Delete up to ten messages in one call, retrying refused entries singly; return each outcome."""
    return _batched(
        entries,
        lambda batch: sqs.delete_message_batch(QueueUrl=queue_url, Entries=batch),
        lambda e: sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=e.receipt_handle),
    )


def change_visibility_batch(sqs: SqsClient, queue_url: str, entries: list[Entry]) -> Outcomes:
    """Set each entry's visibility timeout in one call, retrying refused entries singly; return each outcome."""
    timeouts = {str(i): e.visibility for i, e in enumerate(entries)}
    return _batched(
        entries,
        lambda batch: sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[{**item, "VisibilityTimeout": timeouts[item["Id"]]} for item in batch],
        ),
        lambda e: sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=e.receipt_handle, VisibilityTimeout=e.visibility
        ),
    )


def send_now(sqs: SqsClient, send: Send, entries: list[Entry]) -> None:
    """Send entries at once, in batches of ten per queue, and tell each one its outcome."""
    by_queue: dict[str, list[Entry]] = {}
    for entry in entries:
        by_queue.setdefault(entry.queue_url, []).append(entry)
    for queue_url, group in by_queue.items():
        for start in range(0, len(group), MAX_BATCH):
            for entry, error in send(sqs, queue_url, group[start : start + MAX_BATCH]):
                try:
                    entry.done(error)
                except Exception:  # one broken callback must not lose the other entries' outcomes
                    log.exception("sqsd: reporting on message %s failed", entry.message_id)


class Batcher:
    """Collect entries and send them in batches of ten from one background thread.

    `sqs` is the client and `send` one of delete_batch or change_visibility_batch; `name` labels
    the thread.
    """

    def __init__(self, sqs: SqsClient, send: Send, name: str) -> None:
        self.sqs = sqs
        self.send = send
        self.name = name
        self._pending: list[Entry] = []
        self._first_at = 0.0
        self._sending = 0
        self._hurry = False
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, entry: Entry) -> None:
        """Queue one entry; it is sent within FLUSH_AFTER_S, or at once when ten are waiting."""
        with self._changed:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"sqsd-{self.name}", daemon=True)
                self._thread.start()
            if len(self._pending) >= MAX_BATCH or len(self._pending) == 1:
                self._changed.notify_all()

    @property
    def busy(self) -> bool:
        """True while entries wait or a batch is being sent."""
        return bool(self._pending or self._sending)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything now and wait until it is sent; return False on timeout."""
        with self._changed:
            self._hurry = True
            self._changed.notify_all()
            return self._changed.wait_for(lambda: not self.busy, timeout=timeout)

    def close(self, timeout: float = 30) -> None:
        """Send what is left, then stop the thread."""
        self.flush(timeout)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next_batch(self) -> list[Entry] | None:
        with self._changed:
            while True:
                if self._pending:
                    full = len(self._pending) >= MAX_BATCH
                    wait = self._first_at + FLUSH_AFTER_S - time.monotonic()
                    if full or self._hurry or self._closed or wait <= 0:
                        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                        self._first_at = time.monotonic()
                        self._sending += 1
                        return batch
                    self._changed.wait(wait)
                elif self._closed:
                    return None
                else:
                    self._hurry = False
                    self._changed.wait()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                send_now(self.sqs, self.send, batch)
            finally:
                with self._changed:
                    self._sending -= 1
                    self._changed.notify_all()
