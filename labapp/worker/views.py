"""The routes the daemon POSTs to: every path for messages, /tasks/<name> for periodic tasks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from labapp.worker import state
from labapp.worker.scenarios import BadMessage, Job, parse_body, perform, read_job

log = logging.getLogger("labapp.worker")

messages = Blueprint("messages", __name__)
#: The view a learner's handler replaces (course.handlers.install_handler).
MESSAGE_ENDPOINT = "messages.handle_message"


def bad(reason: str, status: int = 400) -> Response:
    """Return a JSON error answer with one short reason."""
    response = jsonify(error=reason)
    response.status_code = status
    return response


def receive_count() -> int:
    """Return the request's X-Aws-Sqsd-Receive-Count, or 1 when it is missing or not a number."""
    header = request.headers.get("X-Aws-Sqsd-Receive-Count", "1").strip()
    # int() refuses more than 4,300 digits; no receive count has more than a handful.
    return int(header) if header.isascii() and header.isdigit() and len(header) <= 9 else 1


def process(data: Mapping[str, Any]) -> str:
    """Do the work for one message inside a handler and record it in the ledger; return applied/duplicate.

    Raises BadMessage (a ValueError) with a one-line reason when the message can never succeed. It
    lives here, not in the course, so that a handler using it deploys with the worker alone.
    """
    return record(read_job(data))


def record(job: Job) -> str:
    """Do a job's work for the current request and apply its business ids once; return applied/duplicate."""
    message_id = request.headers.get("X-Aws-Sqsd-Msgid")
    applied = perform(job, state.current().ledger, message_id, receive_count())
    return "applied" if applied else "duplicate"


@messages.post("/", defaults={"path": ""}, strict_slashes=False)
@messages.post("/<path:path>")
def handle_message(path: str) -> Response:
    """Process one message POSTed by the daemon and answer 200 only when it is done."""
    message_id = request.headers.get("X-Aws-Sqsd-Msgid", "-")
    count = receive_count()
    try:
        job = read_job(parse_body(request.get_data()), current_app.config["WORK_MS"])
    except BadMessage as exc:
        log.warning("worker: rejected msgid=%s receive_count=%s: %s", message_id, count, exc)
        return bad(str(exc))
    applied = perform(job, state.current().ledger, message_id, count)
    outcome = "applied" if applied else "duplicate"
    log.info("worker: %s %s msgid=%s receive_count=%s", job.kind, outcome, message_id, count)
    return jsonify(result=outcome, business_ids=job.business_ids, applied=len(applied))


@messages.post("/tasks/<name>")
def handle_task(name: str) -> Response:
    """Run a periodic task once per scheduled time (the body of a task POST is empty)."""
    scheduled_at = request.headers.get("X-Aws-Sqsd-Scheduled-At", "")
    if not scheduled_at:
        return bad("a periodic task POST needs the X-Aws-Sqsd-Scheduled-At header")
    ledger = state.current().ledger
    applied = ledger.apply(f"task:{name}:{scheduled_at}", "task", request.headers.get("X-Aws-Sqsd-Msgid"))
    log.info("worker: task %s scheduled at %s %s", name, scheduled_at, "ran" if applied else "duplicate")
    return jsonify(result="applied" if applied else "duplicate", task=name, scheduled_at=scheduled_at)
