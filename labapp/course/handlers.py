"""Your own Flask handlers in the lab's worker, and the kit's ready-made ones (good and bad).

`install_handler(lab, fn)` makes the lab's worker answer the daemon's POSTs with your view
function; inside it, `process(data)` does the kit's work for one message and records it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import request

from labapp.course.lab import RUNNING, Lab
from labapp.errors import LabError
from labapp.sqs.queues import ensure_queues
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.worker import state as worker_state
from labapp.worker.scenarios import perform, read_job
from labapp.worker.views import MESSAGE_ENDPOINT, process, receive_count


def install_handler(lab: Lab, handler: Callable[[], Any]) -> None:
    """Let your Flask view function answer the daemon's POSTs instead of the kit's worker."""
    if not callable(handler):
        raise LabError(f"install_handler needs a function; got {handler!r}.")
    assert lab.worker is not None
    app = lab.worker.app
    state = lab.state
    if state.kit_handler is None:
        state.kit_handler = app.view_functions[MESSAGE_ENDPOINT]

    def view(path: str = "") -> Any:
        return handler()

    view.__name__ = getattr(handler, "__name__", "handler")
    app.view_functions[MESSAGE_ENDPOINT] = view


def restore_handler(lab: Lab) -> None:
    """Put the kit's own worker handler back."""
    assert lab.worker is not None
    state = lab.state
    if state.kit_handler is not None:
        lab.worker.app.view_functions[MESSAGE_ENDPOINT] = state.kit_handler
        state.kit_handler = None


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
    ledger = worker_state.current().ledger
    message_id = request.headers.get("X-Aws-Sqsd-Msgid")
    count = receive_count()

    def work() -> None:
        perform(read_job(data), ledger, message_id, count)

    threading.Thread(target=work, name="background-work").start()
    return "Accepted", 202


def apply_options(lab: Lab, options: SqsdOptions) -> None:
    """Use other sqsd options: restart the daemon and update the queue (MaxRetries is its RedrivePolicy)."""
    lab.queues = ensure_queues(lab.sqs, lab.queues.name, options.MaxRetries, options.VisibilityTimeout)
    lab.start_daemon(options=options)


# -- checks use a lab of their own ------------------------------------------------------------------------
@contextlib.contextmanager
def sandbox(name: str, options: SqsdOptions = LAB_PROFILE, app: Any = None) -> Iterator[Lab]:
    """Run a check on a private lab (its own queues, worker and daemon), then stop it; `app`, a WSGI
    app, answers the daemon instead of the kit's worker."""
    box = Lab(f"{name}-check", options)
    box.app = app
    owner = RUNNING.get(name)
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
