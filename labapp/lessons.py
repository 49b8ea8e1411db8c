"""Helpers the notebooks call so their cells stay short: preflight, handlers, tables, plots, logs.

Everything here drives the real lab (`labapp.lab.Lab`): the SQS endpoint, the daemon and the Flask
worker. Nothing here talks to AWS.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, current_app, request

from labapp.config import LAB_PROFILE, OPTION_NAMES, SqsdOptions
from labapp.daemon import DaemonEvent
from labapp.errors import LabError
from labapp.inspector import RecordedRequest
from labapp.lab import Lab
from labapp.post import Encoding
from labapp.queues import ensure_queues, purge
from labapp.stack import lab_home
from labapp.worker import SCENARIOS, BadMessage

__all__ = [  # what is not defined here comes from observe.py and props.py (imported at the end)
    "CAUSES",
    "WORKER_IAM_NEEDS",
    "Attempt",
    "BadMessage",
    "DoneStore",
    "MessageStory",
    "Metrics",
    "PaymentGateway",
    "dead_letter_ids",
    "ebextensions_yaml",
    "iam_gaps",
    "logs",
    "metrics",
    "outcome_counts",
    "plot_metrics",
    "plot_post_spans",
    "plot_posts",
    "print_rows",
    "process",
    "sqsd_line",
    "start",
    "start_mystery",
    "stories",
    "tail",
    "timed_batch",
    "try_statuses",
    "wait_for",
    "watch",
]

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


# Notebooks call everything through `lessons.`; these two modules hold the larger pieces.
from labapp.observe import (  # noqa: E402
    Attempt,
    MessageStory,
    Metrics,
    dead_letter_ids,
    logs,
    metrics,
    outcome_counts,
    plot_metrics,
    plot_post_spans,
    plot_posts,
    print_rows,
    sqsd_line,
    stories,
    tail,
    timed_batch,
    try_statuses,
    wait_for,
    watch,
)
from labapp.props import (  # noqa: E402
    CAUSES,
    WORKER_IAM_NEEDS,
    DoneStore,
    PaymentGateway,
    ebextensions_yaml,
    iam_gaps,
    start_mystery,
)
