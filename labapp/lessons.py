"""Helpers the notebooks call so their cells stay short: preflight, handlers, tables, plots, logs.

Everything here drives the real lab (`labapp.lab.Lab`): the SQS endpoint, the daemon and the Flask
worker. Nothing here talks to AWS.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, current_app, request

from labapp.config import AWS_DEFAULTS, LAB_PROFILE, OPTION_NAMES, SqsdOptions
from labapp.daemon import DaemonEvent
from labapp.errors import LabError
from labapp.inspector import RecordedRequest
from labapp.lab import Lab
from labapp.post import Encoding
from labapp.queues import ensure_queues, peek, purge
from labapp.stack import lab_home
from labapp.worker import SCENARIOS, BadMessage

__all__ = ["BadMessage", "process", "start"]

log = logging.getLogger("labapp.lessons")

HANDLER_ENDPOINT = "messages.handle_message"
SQSD_LOG = "/var/log/aws-sqsd/default.log"  # where the real daemon writes on a worker instance

DOCS = {
    "worker": "https://docs.aws.amazon.com/elasticbeanstalk/latest/dg/using-features-managing-env-tiers.html",
    "options": "https://docs.aws.amazon.com/elasticbeanstalk/latest/dg/command-options-general.html",
    "set_queue_attributes": "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html",
    "message_move": "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html",
    "scaling": "https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-using-sqs-queue.html",
}


# -- preflight ------------------------------------------------------------------------------------
class PreflightError(LabError):
    """The lab could not start; shown as two short lines instead of a traceback."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} Fix: {fix}")
        self.problem = problem
        self.fix = fix

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback.
        return [f"Preflight failed: {self.problem}", f"Fix: {self.fix}"]


class LogBook(logging.Handler):
    """Keep the last log lines of the worker, the daemon and your own handlers for `logs()`."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one formatted line, unless a check is running."""
        if self.paused:
            return
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        self.lines.append(f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}")


class LessonLab(Lab):
    """A Lab that also keeps a log book and an sqsd-style log file, and cleans both up on stop()."""

    def __init__(self, name: str, options: SqsdOptions = LAB_PROFILE, encoding: Encoding = "sqsd") -> None:
        super().__init__(name, options, encoding)
        self.profile = options
        self.logbook = LogBook()
        self.sqsd_log_path = lab_home() / "logs" / f"lab-{name}" / "aws-sqsd" / "default.log"
        self.sent_at: dict[str, float] = {}
        self.mystery: str | None = None
        self._root_level: int | None = None

    def start(self) -> LessonLab:
        """Start the lab and route log lines into the log book instead of the notebook."""
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(self.logbook)
        self.sqsd_log_path.parent.mkdir(parents=True, exist_ok=True)
        self.sqsd_log_path.write_text("")
        self.subscribe(self._write_sqsd_line)
        try:
            super().start()
        except BaseException:
            self._release_logging()
            raise
        return self

    def _delete_queues(self) -> None:
        from labapp.queues import sqs_client
        from labapp.stack import default_endpoint_url

        sqs = sqs_client(self.endpoint.url if self.endpoint else default_endpoint_url())
        for name in (f"lab-{self.name}", f"lab-{self.name}-dlq"):
            with contextlib.suppress(ClientError):
                sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def fresh_queues(self) -> None:
        """Replace both queues with new, empty ones (a purge is allowed only once a minute)."""
        running = self.daemon is not None
        self.stop_daemon()
        self._delete_queues()
        self.queues = ensure_queues(
            self.sqs, f"lab-{self.name}", self.profile.MaxRetries, self.profile.VisibilityTimeout
        )
        self.options = self.profile
        if running:
            self.start_daemon()

    def send(self, body: Any, count: int = 1, attributes: Any = None, delay_seconds: int = 0) -> list[str]:
        """Send like Lab.send, and remember when each message left (for the age of the oldest)."""
        ids = super().send(body, count=count, attributes=attributes, delay_seconds=delay_seconds)
        now = time.time()
        self.sent_at.update(dict.fromkeys(ids, now))
        return ids

    def stop(self) -> None:
        """Stop the daemon and worker, delete this notebook's queues, and give logging back."""
        self.stop_daemon()
        if self.endpoint is not None:
            with contextlib.suppress(LabError, ClientError, BotoCoreError):
                self._delete_queues()  # the next start of this notebook begins with new queues
        super().stop()
        self._release_logging()

    def _release_logging(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.logbook)
        if self._root_level is not None:
            root.setLevel(self._root_level)
            self._root_level = None

    def _write_sqsd_line(self, event: DaemonEvent) -> None:
        line = sqsd_line(event, self.queues.name if hasattr(self, "queues") else "")
        if line:
            with self.sqsd_log_path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")


_running: dict[str, LessonLab] = {}


def start(
    name: str, *, daemon: bool = True, options: SqsdOptions = LAB_PROFILE, encoding: Encoding = "sqsd"
) -> LessonLab:
    """Start (or restart) this notebook's lab and say in one line what runs, or print one fix."""
    previous = _running.pop(name, None)
    if previous is not None:
        previous.stop()  # running the preflight cell twice must not leave two daemons on one queue
    lab = LessonLab(name, options, encoding)
    try:
        lab.start()
    except LabError as exc:
        raise PreflightError(str(exc), "run `labapp doctor` in a terminal and follow its advice.") from None
    except OSError as exc:
        raise PreflightError(f"{exc}.", "run `labapp doctor` in a terminal and follow its advice.") from None
    except SystemExit:
        # werkzeug exits when another program takes the port between our look and its bind.
        raise PreflightError(
            "the SQS endpoint could not bind its port.", "run this cell again, or `labapp doctor`."
        ) from None
    if not daemon:
        lab.stop_daemon()
    _running[name] = lab
    assert lab.endpoint is not None and lab.worker is not None
    what = "daemon running" if daemon else "daemon paused (you play the daemon)"
    print(
        f"Lab {name} is ready: {lab.endpoint.backend} SQS at {lab.endpoint.url}, queues {lab.queues.name} "
        f"and {lab.queues.dlq_name}, worker at {lab.worker.url}, {what}."
    )
    return lab


def reset(lab: Lab) -> None:
    """Empty both queues, clear the ledger and recorded requests, undo failures and handlers."""
    restore_handler(lab)
    lab.heal()
    if isinstance(lab, LessonLab):
        lab.fresh_queues()
    else:
        purge(lab.sqs, lab.queues.url)
        purge(lab.sqs, lab.queues.dlq_url)
    assert lab.worker is not None
    lab.worker.app.extensions["lab.ledger"].clear()
    lab.worker.app.extensions["lab.inspector"].clear()
    lab.worker.app.extensions["lab.concurrency"].reset()
    lab.events.clear()
    if isinstance(lab, LessonLab):
        lab.sent_at.clear()
        lab.mystery = None


def describe(lab: Lab) -> None:
    """Print the parts of the lab and what each one stands for on AWS."""
    assert lab.endpoint is not None and lab.worker is not None
    daemon = lab.daemon.state if lab.daemon is not None else "stopped"
    rows = [
        ("SQS endpoint", f"{lab.endpoint.backend} at {lab.endpoint.url}", "Amazon SQS"),
        ("worker queue", lab.queues.name, "the queue EB creates for the environment"),
        (
            "dead-letter queue",
            lab.queues.dlq_name,
            f"RedrivePolicy maxReceiveCount={lab.queues.max_receive_count}",
        ),
        ("daemon", f"{daemon}, posting to {lab.worker.url}{lab.options.HttpPath}", "sqsd on each instance"),
        ("worker", lab.worker.url, "your application on port 80"),
    ]
    for part, here, aws in rows:
        print(f"{part:<18} {here:<52} <- on AWS: {aws}")


def compare_options(**columns: SqsdOptions) -> None:
    """Print sqsd options side by side, one column per keyword, e.g. lab=..., aws=...."""
    names = [n for n in OPTION_NAMES if n != "WorkerQueueURL"]
    width = max(len(title) for title in columns) + 2
    print("option".ljust(24) + "".join(title.rjust(max(width, 18)) for title in columns))
    for name in names:
        cells = "".join(str(getattr(opts, name)).rjust(max(width, 18)) for opts in columns.values())
        print(name.ljust(24) + cells)


# -- requests on the wire ---------------------------------------------------------------------------
def raw_request(req: RecordedRequest, max_body: int = 400) -> str:
    """Return a recorded request as it came over the socket: request line, headers, blank line, body."""
    lines = [req.request_line, *(f"{name}: {value}" for name, value in req.headers), ""]
    body = req.body.decode("utf-8", errors="replace")
    if len(body) > max_body:
        body = body[:max_body] + f"... ({len(req.body)} bytes)"
    return "\n".join([*lines, body])


def show_request(req: RecordedRequest, title: str | None = None) -> None:
    """Print one recorded POST byte for byte (the body is shown as text)."""
    if title:
        print(f"--- {title} ---")
    print(raw_request(req))
    print(f"--- the worker answered {req.status} ---")


def request_for(lab: Lab, message_id: str) -> RecordedRequest:
    """Return the last recorded POST that carried this message id."""
    for req in reversed(lab.requests()):
        if req.header("X-Aws-Sqsd-Msgid") == message_id:
            return req
    raise LabError(f"No POST for message {message_id} was recorded; did the daemon run? (lab.events)")


def flask_view_of(req: RecordedRequest) -> dict[str, Any]:
    """Replay a recorded POST into a tiny Flask app and report what request.form and friends hold."""
    app = Flask("replay")
    seen: dict[str, Any] = {}

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    def look(path: str) -> str:
        seen["request.get_data()"] = request.get_data()
        seen["request.form"] = request.form.to_dict()
        seen["request.get_json(silent=True)"] = request.get_json(silent=True)
        seen["request.content_type"] = request.content_type
        return "ok"

    headers = {k: v for k, v in req.headers if k.lower() not in ("host", "content-length")}
    app.test_client().post(req.path, data=req.body, headers=headers)
    return seen


# -- handlers you write ----------------------------------------------------------------------------
def process(data: Mapping[str, Any]) -> str:
    """Do the work for one message inside a handler and record it in the ledger; return applied/duplicate.

    Raises BadMessage (a ValueError) with a one-line reason when the message can never succeed.
    """
    if not isinstance(data, Mapping):
        raise BadMessage("the body must be a JSON object")
    kind = data.get("type")
    if kind not in SCENARIOS:
        raise BadMessage(f"field 'type' must be one of {', '.join(SCENARIOS)}; got {kind!r}")
    business_ids = SCENARIOS[kind](data)
    work_ms = data.get("work_ms", 0)
    if isinstance(work_ms, bool) or not isinstance(work_ms, int) or not 0 <= work_ms <= 600_000:
        raise BadMessage("work_ms must be a whole number from 0 to 600000")
    if work_ms:
        threading.Event().wait(work_ms / 1000)
    return _record(current_app, str(kind), business_ids)


def _record(
    app: Any, kind: str, business_ids: list[str], message_id: str | None = None, count: int = 1
) -> str:
    if message_id is None:
        message_id = request.headers.get("X-Aws-Sqsd-Msgid")
        count = int(request.headers.get("X-Aws-Sqsd-Receive-Count", "1") or 1)
    ledger = app.extensions["lab.ledger"]
    applied = [bid for bid in business_ids if ledger.apply(bid, kind, message_id, count)]
    return "applied" if applied else "duplicate"


def install_handler(lab: Lab, handler: Callable[[], Any]) -> None:
    """Let your Flask view function answer the daemon's POSTs instead of the kit's worker."""
    if not callable(handler):
        raise LabError(f"install_handler needs a function; got {handler!r}.")
    assert lab.worker is not None
    app = lab.worker.app
    app.extensions.setdefault("lab.kit_handler", app.view_functions[HANDLER_ENDPOINT])

    def view(path: str = "") -> Any:
        return handler()

    view.__name__ = getattr(handler, "__name__", "handler")
    app.view_functions[HANDLER_ENDPOINT] = view


def restore_handler(lab: Lab) -> None:
    """Put the kit's own worker handler back."""
    assert lab.worker is not None
    app = lab.worker.app
    kit = app.extensions.pop("lab.kit_handler", None)
    if kit is not None:
        app.view_functions[HANDLER_ENDPOINT] = kit


def answer_as_asked() -> Any:
    """A handler that answers with the status in the body's `respond` field (200 does the work)."""
    data = json.loads(request.get_data())
    status = int(data.get("respond", 200))
    if status == 200:
        process(data)
    return f"answering {status}", status


def article_handler() -> Any:
    """The seed article's handler: it reads a form field that real sqsd never sends."""
    message_body = request.form.get("SQSMessageBody")
    try:
        data = json.loads(message_body or "")
    except json.JSONDecodeError:
        return "Invalid JSON", 400
    process(data)
    return "Processed", 200


def article_background_handler() -> Any:
    """The seed article's pattern: start the work on a thread and answer 202 at once."""
    data = json.loads(request.get_data())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    message_id = request.headers.get("X-Aws-Sqsd-Msgid")
    count = int(request.headers.get("X-Aws-Sqsd-Receive-Count", "1"))

    def work() -> None:
        _record(app, str(data["type"]), SCENARIOS[data["type"]](data), message_id, count)

    threading.Thread(target=work, name="background-work").start()
    return "Accepted", 202


def apply_options(lab: Lab, options: SqsdOptions) -> None:
    """Use other sqsd options: restart the daemon and update the queue (MaxRetries is its RedrivePolicy)."""
    lab.queues = ensure_queues(lab.sqs, lab.queues.name, options.MaxRetries, options.VisibilityTimeout)
    lab.start_daemon(options=options)


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
    if options is not None:
        apply_options(lab, options)
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
    # A handler that reads the form field of the seed article: real sqsd sends a raw body, so
    # every message is rejected. The symptom is "nothing gets processed".
    install_handler(lab, article_handler)
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


# -- checks use a lab of their own ------------------------------------------------------------------------
@contextlib.contextmanager
def sandbox(name: str, options: SqsdOptions = LAB_PROFILE) -> Iterator[LessonLab]:
    """Run a check on a private lab (its own queues, worker and daemon), then stop it."""
    box = LessonLab(f"{name}-check", options)
    owner = _running.get(name)
    if owner is not None:
        owner.logbook.paused = True  # the check's traffic is not the learner's
    try:
        box.start()
        yield box
    finally:
        box.stop()
        if owner is not None:
            owner.logbook.paused = False


def send_and_wait(lab: Lab, body: Any, timeout: float = 20, **kwargs: Any) -> list[str]:
    """Send, then wait until the queue is idle; return the message ids."""
    ids = lab.send(body, **kwargs)
    lab.wait_until_idle(timeout=timeout)
    return ids
