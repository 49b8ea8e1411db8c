"""A standard queue's messages for moto, indexed so that each operation touches only its own messages.

moto keeps a queue's messages in a plain list and scans all of it to answer "which are
receivable?"; `MessageIndex` answers from two heaps and three counters instead. It still looks
like the list to moto's own code (`append`, `remove`, iteration in send order, `len`), because
`Queue.add_message` and `purge_queue` stay moto's. The caller holds the queue's lock.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: A heap may hold this many stale entries beyond twice the live ones before it is rebuilt.
HEAP_SLACK = 1024


class Place(enum.IntEnum):
    """Where a live message stands; each has one ApproximateNumberOf* counter."""

    READY = 0
    DELAYED = 1
    IN_FLIGHT = 2


def receivable(message: Any, now: float) -> bool:
    """Return True when moto would hand the message out at `now` (milliseconds)."""
    # moto: Message.visible is `now > visible_at`, Message.delayed is `now < delayed_until`.
    return bool(now > message.visible_at and now >= message.delayed_until)


class MessageIndex:
    """The live messages in send order, the ready ones on a heap by send order, the rest by due time.

    `clock` returns moto's time in milliseconds; it is read once per operation, not per message.
    Heap entries go stale when a message is handed out, deleted or re-timed; they are skipped when
    popped, and a heap is rebuilt when stale entries outnumber live ones.
    """

    def __init__(self, clock: Callable[[], float], messages: Iterable[Any] = ()) -> None:
        self.clock = clock
        self.place: dict[Any, Place] = {}  # insertion order is send order
        self.seq: dict[Any, int] = {}
        self.by_handle: dict[str, Any] = {}  # every receipt handle a live message ever had
        self.ready: list[tuple[int, Any]] = []
        self.in_ready: set[Any] = set()
        self.timed: list[tuple[float, int, Any]] = []  # (receivable from, seq, message)
        self.counts = dict.fromkeys(Place, 0)
        self.next_seq = 0
        self.extend(messages)

    # -- the list surface moto's own code uses -----------------------------------------------------
    def append(self, message: Any) -> None:
        self.add(message, self.clock())

    def extend(self, messages: Iterable[Any]) -> None:
        now = self.clock()
        for message in messages:
            self.add(message, now)

    def remove(self, message: Any) -> None:
        if message not in self.place:
            raise ValueError("message not in queue")
        self.drop(message)

    def clear(self) -> None:
        for message in list(self.place):
            self.drop(message)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.place))  # a copy: callers change the queue while they iterate

    def __len__(self) -> int:
        return len(self.place)

    def __contains__(self, message: object) -> bool:
        return message in self.place

    def __getitem__(self, index: Any) -> Any:
        return list(self.place)[index]

    def __repr__(self) -> str:
        return f"<MessageIndex live={len(self.place)} ready={self.counts[Place.READY]}>"

    # -- bookkeeping -------------------------------------------------------------------------------
    def add(self, message: Any, now: float) -> None:
        """Take in a message (new, or redriven from another queue with its old handles)."""
        if message in self.place:
            return
        self.seq[message] = self.next_seq
        self.next_seq += 1
        for handle in message.all_receipt_handles:
            if handle is not None:
                self.by_handle[handle] = message
        self._file(message, now)

    def drop(self, message: Any) -> None:
        """Forget a live message (deleted, or moved to the dead-letter queue)."""
        self.counts[self.place.pop(message)] -= 1
        self.seq.pop(message, None)
        self.in_ready.discard(message)
        for handle in message.all_receipt_handles:
            if handle is not None and self.by_handle.get(handle) is message:
                del self.by_handle[handle]

    def refile(self, message: Any, now: float) -> None:
        """File a live message again after it was handed out or its visibility changed."""
        if message in self.place:
            self.in_ready.discard(message)  # its ready entry goes stale
            self._file(message, now)

    def _set_place(self, message: Any, place: Place) -> None:
        old = self.place.get(message)
        if old is not None:
            self.counts[old] -= 1
        self.place[message] = place
        self.counts[place] += 1

    def _file(self, message: Any, now: float) -> None:
        if receivable(message, now):
            self._set_place(message, Place.READY)
            if message not in self.in_ready:
                self.in_ready.add(message)
                heapq.heappush(self.ready, (self.seq[message], message))
                if len(self.ready) > 2 * len(self.in_ready) + HEAP_SLACK:
                    self.ready = [(self.seq[m], m) for m in self.in_ready]
                    heapq.heapify(self.ready)
            return
        visible_at, delayed_until = message.visible_at, message.delayed_until
        self._set_place(message, Place.DELAYED if delayed_until > visible_at else Place.IN_FLIGHT)
        heapq.heappush(self.timed, (max(visible_at, delayed_until), self.seq[message], message))
        if len(self.timed) > 2 * (len(self.place) - len(self.in_ready)) + HEAP_SLACK:
            self.timed = [
                (max(m.visible_at, m.delayed_until), self.seq[m], m)
                for m, place in self.place.items()
                if place is not Place.READY
            ]
            heapq.heapify(self.timed)

    # -- what the patched operations ask -------------------------------------------------------------
    def promote(self, now: float) -> None:
        """Move every waiting message that is receivable at `now` onto the ready heap."""
        held = []
        while self.timed and self.timed[0][0] <= now:
            entry = heapq.heappop(self.timed)
            message = entry[2]
            place = self.place.get(message)
            if place is None or place is Place.READY:
                continue  # deleted, or made ready through a newer entry
            if max(message.visible_at, message.delayed_until) != entry[0]:
                continue  # re-timed since; a newer entry stands for it
            if receivable(message, now):
                self._file(message, now)
            else:
                held.append(entry)  # due exactly now: moto wants now > visible_at
        for entry in held:
            heapq.heappush(self.timed, entry)

    def pop_ready(self) -> Any | None:
        """Take the receivable message sent earliest, or return None."""
        while self.ready:
            _, message = heapq.heappop(self.ready)
            if message in self.in_ready:
                self.in_ready.discard(message)
                return message
        return None

    def ready_in_order(self) -> list[Any]:
        """Return the receivable messages, earliest sent first (what moto's `Queue.messages` lists)."""
        return sorted(self.in_ready, key=self.seq.__getitem__)
