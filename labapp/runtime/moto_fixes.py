"""The lab's fixes to moto's SQS (5.2.5): linear in queue depth, and serialised like SQS.

moto answers every question about a queue by scanning its whole message list, reading the clock
for each message: SendMessage reads `Queue.attributes` (three scans), each message handed out
runs a retention check through `get_queue_attributes` (nine scans), a delete scans twice and
rebuilds the list. Draining N messages costs O(N^2): 36 msg/s at depth 300 and about 6 msg/s at
2,000 in the lab, and the 10,000-message chaos run took 326 s. moto's own `Queue.messages`
carries a TODO saying it "can become very inefficient"; no getmoto/moto issue or pull request
about it exists (searched: slow receive or delete, large queues, quadratic cost, deepcopy).

`install()` gives each standard queue a `MessageIndex` (runtime/moto_index.py) in place of the
list, and replaces receive, delete, change-visibility, the counts and the retention check with
versions that read the clock once and touch only the messages they hand out, delete or change.
What a client sees is moto's behaviour, which tests/test_moto_fixes.py pins against moto itself
(order, visibility, delays, receive counts, redrive, retention, purge, long polls). FIFO queues
keep moto's own code: their group rules are subtle and the lab's FIFO queues stay small.

Every change to a queue's messages also holds the queue's lock (the Condition moto's
`add_message` uses), because moto's delete rebuilt the list without it, so a message sent
meanwhile vanished, and two receives could take the same message. Real SQS does neither.
"""

from __future__ import annotations

import functools
import threading
from copy import deepcopy
from typing import Any

from labapp.runtime.moto_index import MessageIndex, Place

_INSTALLED = "_lab_fixes_installed"
_SLOT = "_lab_messages"
#: SQS refuses a visibility that would end more than 12 hours after the message was sent.
MAX_VISIBLE_AFTER_SEND_MS = 43_200 * 1000
_install_lock = threading.Lock()


def _models() -> Any:
    from moto.sqs import models

    return models


def _now_ms() -> float:
    # Looked up at each call, so a test that replaces moto's clock is obeyed.
    return float(_models().unix_time_millis())


def _get_messages(queue: Any) -> Any:
    d = queue.__dict__
    value = d.get(_SLOT)
    if value is None:
        value = d.pop("_messages", [])  # a queue made before install()
        d[_SLOT] = value
    if d.get("fifo_queue", False):
        if isinstance(value, MessageIndex):  # made FIFO after creation: back to moto's list
            value = d[_SLOT] = list(value)
        return value
    if not isinstance(value, MessageIndex):
        with d.get("_messages_lock") or _install_lock:
            value = d[_SLOT]
            if not isinstance(value, MessageIndex):
                value = d[_SLOT] = MessageIndex(_now_ms, value)
    return value


def _set_messages(queue: Any, value: Any) -> None:
    # Queue.__init__ and purge_queue assign a list; it becomes an index on first use.
    queue.__dict__[_SLOT] = value if isinstance(value, MessageIndex) else list(value)


def index_of(queue: Any) -> MessageIndex | None:
    """Return a standard queue's index (None for FIFO queues, which keep moto's list)."""
    value = _get_messages(queue)
    return value if isinstance(value, MessageIndex) else None


def install() -> None:
    """Patch moto's SQS in this process, once; queues made before or after are both served."""
    with _install_lock:
        models = _models()
        if getattr(models.Queue, _INSTALLED, False):
            return
        _patch_queue(models)
        _patch_backend(models)
        setattr(models.Queue, _INSTALLED, True)


def installed() -> bool:
    """Return True once install() has run in this process."""
    return bool(getattr(_models().Queue, _INSTALLED, False))


def _patch_queue(models: Any) -> None:
    Queue = models.Queue
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    moto_messages, moto_wait, moto_delete = Queue.messages, Queue.wait_for_messages, Queue.delete_message
    # Queue.attributes converts 14 names per call with this pure function.
    models.camelcase_to_underscores = functools.lru_cache(maxsize=512)(models.camelcase_to_underscores)
    Queue._messages = property(_get_messages, _set_messages)

    def messages(self: Any) -> list[Any]:
        index = index_of(self)
        if index is None:
            return moto_messages.fget(self)
        with self._messages_lock:
            index.promote(_now_ms())
            return index.ready_in_order()

    def count(place: Place, fifo_counts: Any) -> property:
        def get(self: Any) -> int:
            index = index_of(self)
            with self._messages_lock:
                now = _now_ms()
                if index is None:  # FIFO: moto's predicate, with one clock read per scan
                    return sum(1 for m in self._messages if fifo_counts(m, now))
                index.promote(now)
                return index.counts[place]

        return property(get)

    def wait_for_messages(self: Any, timeout: int) -> None:
        index = index_of(self)
        if index is None:
            return moto_wait(self, timeout)

        def any_ready() -> bool:
            index.promote(_now_ms())
            return bool(index.in_ready)

        with self._messages_lock:
            self._messages_lock.wait_for(any_ready, timeout=timeout)

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            index = index_of(self)
            if index is None:
                return moto_delete(self, receipt_handle)
            if receipt_handle in self.deleted_messages:
                return  # moto lets a second delete of the same handle pass, as SQS does
            message = index.by_handle.get(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid()
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            index.drop(message)

    Queue.messages = property(messages)
    Queue.approximate_number_of_messages = count(
        Place.READY, lambda m, now: now > m.visible_at and not now < m.delayed_until
    )
    Queue.approximate_number_of_messages_delayed = count(Place.DELAYED, lambda m, now: now < m.delayed_until)
    Queue.approximate_number_of_messages_not_visible = count(
        Place.IN_FLIGHT, lambda m, now: not now > m.visible_at
    )
    Queue.wait_for_messages = wait_for_messages
    Queue.delete_message = delete_message


def _patch_backend(models: Any) -> None:
    Backend = models.SQSBackend
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

    moto_receive, moto_change, moto_purge = (
        Backend.receive_message,
        Backend.change_message_visibility,
        Backend.purge_queue,
    )

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            with queue._messages_lock:
                return moto_receive(
                    self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names
                )
        result: list[Any] = []
        polling_end = models.unix_time() + wait_seconds_timeout
        while not result and not (wait_seconds_timeout and models.unix_time() > polling_end):
            to_dlq: list[Any] = []
            with queue._messages_lock:
                _hand_out(
                    models, queue, count, visibility_timeout, message_attribute_names or [], result, to_dlq
                )
            for message in to_dlq:
                # After the source's lock is released: two queues may be each other's DLQ.
                queue.dead_letter_queue.add_message(message)
            if not result:
                if wait_seconds_timeout == 0:
                    break
                queue.wait_for_messages(1)  # the lock is released while waiting
        return result

    def change_message_visibility(
        self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            index = index_of(queue)
            if index is None:
                return moto_change(self, queue_name, receipt_handle, visibility_timeout)
            message = index.by_handle.get(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid
            # docs/aws-behaviour.md#sqs-visibility-range, with moto's own wording.
            if models.unix_time_millis() + int(visibility_timeout) * 1000 - message.sent_timestamp > (
                MAX_VISIBLE_AFTER_SEND_MS
            ):
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                    "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
                )
            message.change_visibility(visibility_timeout)
            index.refile(message, _now_ms())
            if message.visible and message in queue.pending_messages:
                queue.pending_messages.remove(message)

    def purge_queue(self: Any, queue_name: str) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:  # moto assigns an empty list: the index starts again
            moto_purge(self, queue_name)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        # moto asks get_queue_attributes, which counts every message three times, per message.
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > models.unix_time())

    Backend.receive_message = receive_message
    Backend.change_message_visibility = change_message_visibility
    Backend.purge_queue = purge_queue
    Backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


def _hand_out(
    models: Any,
    queue: Any,
    count: int,
    visibility_timeout: int,
    attribute_names: list[str],
    result: list[Any],
    to_dlq: list[Any],
) -> None:
    """One pass of moto's receive loop over the ready messages; the caller holds the queue's lock."""
    index = index_of(queue)
    assert index is not None, "standard queues only"
    now = _now_ms()
    index.promote(now)
    policy = queue.redrive_policy if queue.dead_letter_queue is not None else None
    max_receives = policy["maxReceiveCount"] if policy else None
    retention_s = int(queue.message_retention_period)
    handed: list[Any] = []
    while len(result) < count and (message := index.pop_ready()) is not None:
        if message in queue.pending_messages:
            queue.pending_messages.remove(message)  # visible again: its consumer timed out
        # moto moves a message when it would be delivered once more than maxReceiveCount allows.
        if max_receives is not None and message.approximate_receive_count >= max_receives:
            index.drop(message)
            to_dlq.append(message)
            continue
        queue.pending_messages.add(message)
        message.mark_received(visibility_timeout=visibility_timeout)
        index.by_handle[message.receipt_handle] = message
        handed.append(message)
        copy = deepcopy(message)  # the copy is filtered; the stored message keeps every attribute
        models._filter_message_attributes(copy, attribute_names)
        if retention_s + message.sent_timestamp / 1000 <= models.unix_time():
            break  # moto's quirk, kept: an expired message is marked received, not returned, and ends the call
        result.append(copy)
    for message in handed:  # in flight now, or still ready when VisibilityTimeout was 0
        index.refile(message, now)
