"""What happened to each message, and the metrics and logs that show it (notebooks 03-06, 09).

The notebooks reach these through `labapp.lessons`, e.g. `lessons.stories(lab)`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from labapp.config import SqsdOptions
from labapp.daemon import DaemonEvent
from labapp.errors import LabError
from labapp.lab import Lab
from labapp.queues import peek

if TYPE_CHECKING:
    from labapp.lessons import LessonLab


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
        if event.kind == "posted":
            pending[mid].append((event.time, event.receive_count or 1))
        elif event.kind == "response" and pending[mid]:
            # Two POSTs of one message can overlap (an expired visibility timeout): match the
            # answer to the POST that started `elapsed` seconds before it.
            began = event.time - (event.elapsed or 0.0)
            at, count = min(pending[mid], key=lambda post: abs(post[0] - began))
            pending[mid].remove((at, count))
            story.posts.append(Attempt(at, count, event.status, event.elapsed or 0.0))
        elif event.kind == "deleted":
            story.deleted = True
    for story in result.values():
        story.posts.sort()
    return result


def wait_for(lab: Lab, kind: str, count: int = 1, timeout: float = 15) -> None:
    """Wait until the daemon has emitted `count` events of this kind (e.g. 'retry_scheduled')."""
    deadline = time.monotonic() + timeout
    while sum(1 for event in list(lab.events) if event.kind == kind) < count:
        if time.monotonic() > deadline:
            raise LabError(f"No {count} {kind!r} events within {timeout:.0f}s; look at lab.events.")
        time.sleep(0.05)


def dead_letter_ids(lab: Lab) -> set[str]:
    """Return the ids of the messages in the DLQ (peeking does not move them)."""
    return {m["MessageId"] for m in peek(lab.sqs, lab.queues.dlq_url, 10)}


def try_statuses(lab: Lab, statuses: Sequence[int]) -> list[tuple[int, int, str]]:
    """Answer one message with each status; return (status, POSTs, where the message ended up)."""
    from labapp import lessons  # lessons re-exports this module

    lessons.install_handler(lab, lessons.answer_as_asked)
    try:
        ids = {
            status: lab.send(
                {"type": "order", "order_id": f"status-{status}", "amount": 1, "respond": status}
            )[0]
            for status in statuses
        }
        lab.wait_until_idle(timeout=40)
    finally:
        lessons.restore_handler(lab)
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


def plot_posts(lab: Lab, message_ids: Sequence[str], labels: Sequence[str] | None = None) -> Any:
    """Plot receive count against time for each message, one marker per POST (x = failed, o = 200)."""
    import matplotlib.pyplot as plt

    told = stories(lab, message_ids)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for n, mid in enumerate(message_ids):
        posts = told.get(mid, MessageStory(mid, [], False)).posts
        if not posts:
            continue
        times = [post.at - posts[0].at for post in posts]
        counts = [post.receive_count for post in posts]
        (line,) = ax.step(times, counts, where="post", label=labels[n] if labels else mid[:8])
        for post, x in zip(posts, times, strict=True):
            ax.plot(
                x,
                post.receive_count,
                "o" if post.status == 200 else "x",
                color=line.get_color(),
                markersize=8,
            )
            ax.annotate(
                str(post.status),
                (x, post.receive_count),
                textcoords="offset points",
                xytext=(4, 4 - 14 * (n % 2)),
                fontsize=8,
            )
    limit = lab.options.MaxRetries
    ax.axhline(limit + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.text(
        0,
        limit + 0.6,
        "past maxReceiveCount: the next receive moves the message to the DLQ",
        fontsize=8,
        color="grey",
    )
    ax.set_xlabel("seconds since the message's first POST")
    ax.set_ylabel("receive count")
    ax.set_yticks(range(1, limit + 2))
    ax.set_ylim(0.5, limit + 1.2)
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.9), fontsize=8)
    fig.tight_layout()
    return fig


def plot_post_spans(
    lab: Lab,
    message_ids: Sequence[str],
    labels: Sequence[str] | None = None,
    marks: Mapping[str, float] | None = None,
) -> Any:
    """Draw each POST as a bar from its start to its answer, one row per POST; marks are vertical lines."""
    import matplotlib.pyplot as plt

    told = stories(lab, message_ids)
    starts = [post.at for story in told.values() for post in story.posts]
    origin = min(starts) if starts else 0.0
    rows: list[tuple[str, Attempt]] = []
    for n, mid in enumerate(message_ids):
        name = labels[n] if labels else mid[:8]
        rows += (
            [(f"{name}, POST {k}", post) for k, post in enumerate(told[mid].posts, 1)] if mid in told else []
        )
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.45 * len(rows)))
    for row, (_, post) in enumerate(rows):
        color = "tab:green" if post.status == 200 else "tab:red"
        ax.barh(row, post.took, left=post.at - origin, color=color, alpha=0.6, edgecolor="black")
        answer = post.status if post.status is not None else "no answer in time"
        ax.text(
            post.at - origin + 0.05,
            row,
            f"receive count {post.receive_count}: {answer}",
            va="center",
            fontsize=8,
        )
    for text, x in (marks or {}).items():
        ax.axvline(x, color="grey", linestyle=":")
        ax.text(x, -0.6, f" {text}", fontsize=8, color="grey")
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.8)
    ax.set_xlabel("seconds since the first POST")
    fig.tight_layout()
    return fig


def timed_batch(
    lab: Lab, jobs: Sequence[Mapping[str, Any]], options: SqsdOptions | None = None
) -> tuple[float, int]:
    """Send jobs and wait until they are done; return (seconds, most POSTs the worker saw at once)."""
    from labapp import lessons  # lessons re-exports this module

    if options is not None:
        lessons.apply_options(lab, options)
    assert lab.worker is not None
    concurrency = lab.worker.app.extensions["lab.concurrency"]
    concurrency.reset()
    started = time.monotonic()
    lab.send(jobs)
    lab.wait_until_idle(timeout=60)
    return time.monotonic() - started, int(concurrency.snapshot()["peak"])


# -- monitoring ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Metrics:
    """The four numbers to watch, named like their CloudWatch metrics."""

    visible: int  # ApproximateNumberOfMessagesVisible
    not_visible: int  # ApproximateNumberOfMessagesNotVisible
    oldest_age_s: float  # ApproximateAgeOfOldestMessage
    dead_letter: int  # ApproximateNumberOfMessagesVisible on the DLQ


def metrics(lab: LessonLab) -> Metrics:
    """Return visible, not visible, age of the oldest message and DLQ depth.

    SQS has no queue attribute for the age of the oldest message (CloudWatch computes it), and a
    receive to look would count as a delivery; so the lab works it out from what it sent and what
    the daemon deleted or gave up on.
    """
    d = lab.depth()
    finished = {e.message_id for e in lab.events if e.kind in ("deleted", "dropped_by_retention")}
    finished |= {
        e.message_id
        for e in lab.events
        if e.kind == "retry_scheduled" and (e.receive_count or 0) >= lab.queues.max_receive_count
    }
    waiting = [at for mid, at in lab.sent_at.items() if mid not in finished]
    age = time.time() - min(waiting) if waiting and (d.visible or d.in_flight) else 0.0
    return Metrics(d.visible, d.in_flight, round(age, 1), d.dead_letter)


def watch(
    lab: LessonLab, seconds: float = 5, every: float = 0.25, until_idle: bool = True
) -> list[tuple[float, Metrics]]:
    """Sample metrics every `every` seconds, for at most `seconds` (or until the queues are idle)."""
    samples: list[tuple[float, Metrics]] = []
    started = time.monotonic()
    while True:
        now = time.monotonic() - started
        sample = metrics(lab)
        samples.append((now, sample))
        if now >= seconds or (until_idle and now > 0.5 and sample.visible == sample.not_visible == 0):
            return samples
        time.sleep(every)


def plot_metrics(samples: Sequence[tuple[float, Metrics]], title: str = "") -> Any:
    """Plot visible, not visible and DLQ depth over time, with the age of the oldest on a second axis."""
    import matplotlib.pyplot as plt

    xs = [at for at, _ in samples]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(xs, [m.visible for _, m in samples], label="visible (waiting)")
    ax.plot(xs, [m.not_visible for _, m in samples], label="not visible (in flight)")
    ax.plot(xs, [m.dead_letter for _, m in samples], label="DLQ depth", linestyle="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages")
    age = ax.twinx()
    age.plot(xs, [m.oldest_age_s for _, m in samples], color="grey", linestyle=":", label="age of oldest (s)")
    age.set_ylabel("age of oldest (s)")
    lines = ax.get_legend_handles_labels()[0] + age.get_legend_handles_labels()[0]
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def sqsd_line(event: DaemonEvent, queue: str = "") -> str | None:
    """Format one daemon event as a line in the spirit of the real sqsd log."""
    when = dt.datetime.fromtimestamp(event.time, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    mid = event.message_id or "-"
    if event.kind == "posted" and event.post is not None:
        return f"{when} message: {mid} ({event.receive_count}) sent to {event.post.path} from {queue}"
    if event.kind == "response":
        elapsed = f"{event.elapsed:.3f}" if event.elapsed is not None else "-"
        if event.status == 200:
            return f"{when} http-ok: {mid} 200 - {elapsed}s"
        return f"{when} http-err: {mid} {event.status or event.detail.split(':')[0]} - {elapsed}s"
    if event.kind == "deleted":
        return f"{when} message: {mid} deleted"
    if event.kind == "retry_scheduled":
        return f"{when} message: {mid} ({event.receive_count}) {' '.join(event.detail.split())}"
    if event.kind in ("dropped_by_retention", "released", "sqs_error"):
        return f"{when} {event.kind}: {mid} {event.detail}".rstrip()
    return None


def tail(path: str | Path, n: int = 10) -> None:
    """Print the last n lines of a log file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    print("\n".join(lines[-n:]) if lines else f"({path} is empty)")


def logs(lab: LessonLab, contains: str = "", n: int = 10) -> None:
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
        counts[f"{event.kind} {event.status}" if event.kind == "response" else event.kind] += 1
    return dict(sorted(counts.items()))
