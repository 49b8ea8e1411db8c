"""A recorded POST on the wire: print it byte for byte, find the one for a message, replay it into Flask."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from labapp.course.lab import Lab
from labapp.errors import LabError
from labapp.worker.inspector import RecordedRequest


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
