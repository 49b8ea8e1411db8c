"""The preflight a notebook runs first: start its lab, or say in two lines what is wrong and the fix."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, EndpointConnectionError

from labapp.course.handlers import restore_handler
from labapp.course.lab import RUNNING, Lab
from labapp.errors import EndpointError, LabError
from labapp.sqsd.options import LAB_PROFILE, OPTION_NAMES, SqsdOptions
from labapp.sqsd.post import Encoding


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


#: What a cell raises once the SQS endpoint under a running notebook has gone or was restarted.
ENDPOINT_LOST = (EndpointConnectionError, ConnectionClosedError, EndpointError, ClientError)
NON_EXISTENT = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def endpoint_lost_lines(error: BaseException) -> list[str] | None:
    """Return the two lines that explain a lost or restarted endpoint, or None for any other error."""
    if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") not in NON_EXISTENT:
        return None
    lab = next(reversed(RUNNING.values()), None)
    if isinstance(error, ClientError) and (lab is None or _queue_still_there(lab)):
        return None  # some other queue is missing, not the lab's: the traceback says which
    where = lab.endpoint.url if lab is not None and lab.endpoint is not None else "the lab's endpoint"
    rerun = f'`lab = course.start("{lab.name}")`' if lab is not None else "the notebook's first code cell"
    if isinstance(error, ClientError):
        problem = (
            f"The SQS endpoint at {where} was restarted: this notebook's queues are gone with what they held."
        )
    else:
        problem = (
            f"The SQS endpoint at {where} does not answer: the emulator stopped, and its queues with it."
        )
    return [
        problem,
        f"Fix: run the preflight cell again ({rerun}); it starts what is missing and makes fresh queues.",
    ]


def _queue_still_there(lab: Lab) -> bool:
    try:
        lab.sqs.get_queue_url(QueueName=lab.queues.name)
    except (ClientError, BotoCoreError):
        return False
    return True


def _show_endpoint_lost(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None
) -> None:
    lines = endpoint_lost_lines(value)
    if lines is None:  # a ClientError of another kind: IPython's own traceback
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return
    print("\n".join(lines))


def show_endpoint_errors_briefly() -> None:
    """In IPython, print two lines instead of a botocore traceback when the endpoint is lost."""
    try:
        from IPython import get_ipython
    except ImportError:  # a plain Python script: tracebacks stay as they are
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc(ENDPOINT_LOST, _show_endpoint_lost)


def start(
    name: str, *, daemon: bool = True, options: SqsdOptions = LAB_PROFILE, encoding: Encoding = "sqsd"
) -> Lab:
    """Start (or restart) this notebook's lab and say in one line what runs, or print one fix."""
    previous = RUNNING.pop(name, None)
    if previous is not None:
        previous.stop()  # running the preflight cell twice must not leave two daemons on one queue
    lab = Lab(name, options, encoding)
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
    RUNNING[name] = lab
    # Once, centrally: every later cell that meets a dead endpoint says so in two lines.
    show_endpoint_errors_briefly()
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
    lab.fresh_queues()
    lab.state.reset()
    lab.events.clear()
    lab.sent_at.clear()
    lab.mystery = None


def describe(lab: Lab) -> None:
    """Print the parts of the lab and what each one stands for on AWS."""
    assert lab.endpoint is not None and lab.worker is not None
    daemon = lab.daemon.state if lab.daemon is not None else "stopped"
    rows = [
        ("SQS endpoint", f"{lab.endpoint.backend} at {lab.endpoint.url}", "Amazon SQS"),
        ("worker queue", lab.queues.name, "the queue EB creates, e.g. awseb-e-...-AWSEBWorkerQueue-..."),
        (
            "dead-letter queue",
            f"{lab.queues.dlq_name}, maxReceiveCount {lab.queues.max_receive_count} (the lab's MaxRetries)",
            "EB's DLQ, maxReceiveCount = MaxRetries, 10 unless you set it",
        ),
        ("daemon", f"{daemon}, posting to {lab.worker.url}{lab.options.HttpPath}", "sqsd on each instance"),
        ("worker", lab.worker.url, "your application behind nginx on port 80"),
    ]
    # One part per two lines: a column after a value as long as a URL would not line up.
    for part, here, aws in rows:
        print(f"{part:<18} {here}\n{'':<18} on AWS: {aws}")


def compare_options(**columns: SqsdOptions) -> None:
    """Print sqsd options side by side, one column per keyword, e.g. lab=..., aws=...."""
    names = [n for n in OPTION_NAMES if n != "WorkerQueueURL"]
    width = max(len(title) for title in columns) + 2
    print("option".ljust(24) + "".join(title.rjust(max(width, 18)) for title in columns))
    for name in names:
        cells = "".join(str(getattr(opts, name)).rjust(max(width, 18)) for opts in columns.values())
        print(name.ljust(24) + cells)
