"""The preflight a notebook runs first: start its lab, or say in two lines what is wrong and the fix."""

from __future__ import annotations

from labapp.course.handlers import restore_handler
from labapp.course.lab import RUNNING, Lab
from labapp.errors import LabError
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
