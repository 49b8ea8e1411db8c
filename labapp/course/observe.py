"""What happened to each message, and the metrics and logs that show it (notebooks 03-06, 09)."""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from labapp.course.lab import Lab
from labapp.errors import LabError, WaitTimeout
from labapp.runtime.wait import wait_until
from labapp.sqs.queues import peek
from labapp.sqsd.events import EventKind
from labapp.sqsd.options import SqsdOptions


# -- what happened ------------------------------------------------------------------------------------
class Attempt(NamedTuple):
    """One POST of a message: when it started, its receive count, the answer and how long it took."""

    at: float
    receive_count: int
    status: int | None  # None when the daemon gave up (timeout, connection error)
    took: float


@dataclasses.dataclass
class MessageStory:
    """Everything the daemon did with one message."""

    message_id: str
    posts: list[Attempt]
    deleted: bool

    @property
    def statuses(self) -> list[int | None]:
        """Return the answer to each POST, in order (None when the daemon stopped waiting)."""
        return [post.status for post in self.posts]


def stories(lab: Lab, message_ids: Iterable[str] | None = None) -> dict[str, MessageStory]:
    """Group the daemon's events by message: each POST with its receive count and answer."""
    wanted = set(message_ids) if message_ids is not None else None
    result: dict[str, MessageStory] = {}
    pending: dict[str, list[tuple[float, int]]] = collections.defaultdict(list)
    for event in list(lab.events):
        mid = event.message_id
        if mid is None or (wanted is not None and mid not in wanted):
            continue
        story = result.setdefault(mid, MessageStory(mid, [], False))
        if event.kind is EventKind.POSTED:
            pending[mid].append((event.time, event.receive_count or 1))
        elif event.kind is EventKind.RESPONSE and pending[mid]:
            # Two POSTs of one message can overlap (an expired visibility timeout): match the
            # answer to the POST that started `elapsed` seconds before it.
            began = event.time - (event.elapsed or 0.0)
            at, count = min(pending[mid], key=lambda post: abs(post[0] - began))
            pending[mid].remove((at, count))
            story.posts.append(Attempt(at, count, event.status, event.elapsed or 0.0))
        elif event.kind is EventKind.DELETED:
            story.deleted = True
    for story in result.values():
        story.posts.sort()
    return result


def wait_for(lab: Lab, kind: str, count: int = 1, timeout: float = 15) -> None:
    """Wait until the daemon has emitted `count` events of this kind (e.g. 'retry_scheduled')."""
    try:
        wait_until(
            lambda: sum(1 for e in list(lab.events) if e.kind == kind) >= count, timeout, f"{kind} events"
        )
    except WaitTimeout:
        raise LabError(f"No {count} {kind!r} events within {timeout:.0f}s; look at lab.events.") from None


def dead_letter_ids(lab: Lab) -> set[str]:
    """Return the ids of the messages in the DLQ (peeking does not move them)."""
    return {m["MessageId"] for m in peek(lab.sqs, lab.queues.dlq_url, 10)}


def try_statuses(lab: Lab, statuses: Sequence[int]) -> list[tuple[int, int, str]]:
    """Answer one message with each status; return (status, POSTs, where the message ended up)."""
    from labapp.course.handlers import answer_as_asked, install_handler, restore_handler

    install_handler(lab, answer_as_asked)
    try:
        ids = {
            status: lab.send(
                {"type": "order", "order_id": f"status-{status}", "amount": 1, "respond": status}
            )[0]
            for status in statuses
        }
        lab.wait_until_idle(timeout=40)
    finally:
        restore_handler(lab)
    told = stories(lab, ids.values())
    in_dlq = dead_letter_ids(lab)
    rows = []
    for status, mid in ids.items():
        story = told.get(mid, MessageStory(mid, [], False))
        where = "deleted" if story.deleted else "dead-letter queue" if mid in in_dlq else "still queued"
        rows.append((status, len(story.posts), where))
    return rows


def print_rows(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows as an aligned text table."""
    table = [list(map(str, header)), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def timed_batch(
    lab: Lab, jobs: Sequence[Mapping[str, Any]], options: SqsdOptions | None = None
) -> tuple[float, int]:
    """Send jobs and wait until they are done; return (seconds, most POSTs the worker saw at once)."""
    from labapp.course.handlers import apply_options

    if options is not None:
        apply_options(lab, options)
    concurrency = lab.state.concurrency
    concurrency.reset()
    started = time.monotonic()
    lab.send(jobs)
    lab.wait_until_idle(timeout=60)
    return time.monotonic() - started, int(concurrency.snapshot()["peak"])


# -- monitoring ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QueueMetrics:
    """The four numbers to watch, named like their CloudWatch metrics."""

    visible: int  # ApproximateNumberOfMessagesVisible
    not_visible: int  # ApproximateNumberOfMessagesNotVisible
    oldest_age_s: float  # ApproximateAgeOfOldestMessage
    dead_letter: int  # ApproximateNumberOfMessagesVisible on the DLQ


def metrics(lab: Lab) -> QueueMetrics:
    """Return visible, not visible, age of the oldest message and DLQ depth.

    SQS has no queue attribute for the age of the oldest message (CloudWatch computes it), and a
    receive to look would count as a delivery; so the lab works it out from what it sent and what
    the daemon deleted or gave up on.
    """
    d = lab.depth()
    finished = {
        e.message_id for e in lab.events if e.kind in (EventKind.DELETED, EventKind.DROPPED_BY_RETENTION)
    }
    finished |= {
        e.message_id
        for e in lab.events
        if e.kind is EventKind.RETRY_SCHEDULED and (e.receive_count or 0) >= lab.queues.max_receive_count
    }
    waiting = [at for mid, at in lab.sent_at.items() if mid not in finished]
    age = time.time() - min(waiting) if waiting and (d.visible or d.in_flight) else 0.0
    return QueueMetrics(d.visible, d.in_flight, round(age, 1), d.dead_letter)


def watch(
    lab: Lab, seconds: float = 5, every: float = 0.25, until_idle: bool = True
) -> list[tuple[float, QueueMetrics]]:
    """Sample metrics every `every` seconds, for at most `seconds` (or until the queues are idle and settled)."""
    samples: list[tuple[float, QueueMetrics]] = []
    started = time.monotonic()
    while True:
        now = time.monotonic() - started
        sample = metrics(lab)
        samples.append((now, sample))
        idle = until_idle and now > 0.5 and sample.visible == sample.not_visible == 0
        # Idle twice in a row with the same numbers: a move to the DLQ may land between two reads.
        settled = idle and len(samples) > 1 and samples[-2][1] == sample
        if now >= seconds or settled:
            return samples
        time.sleep(every)


def tail(path: str | Path, n: int = 10) -> None:
    """Print the last n lines of a log file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    print("\n".join(lines[-n:]) if lines else f"({path} is empty)")


def logs(lab: Lab, contains: str = "", n: int = 10) -> None:
    """Print the last n log lines (worker, daemon and your own loggers), optionally filtered."""
    lines = [line for line in lab.logbook.lines if contains in line]
    print("\n".join(lines[-n:]) if lines else "(no log lines yet)")


def outcome_counts(lab: Lab, message_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Count the daemon's events by kind and status, e.g. {'response 200': 3, 'deleted': 3}."""
    wanted = set(message_ids) if message_ids is not None else None
    counts: collections.Counter[str] = collections.Counter()
    for event in list(lab.events):
        if wanted is not None and event.message_id not in wanted:
            continue
        counts[f"{event.kind} {event.status}" if event.kind is EventKind.RESPONSE else event.kind] += 1
    return dict(sorted(counts.items()))
