"""The daemon's outcomes as lines of the real sqsd log, with one formatter for every copy of it.

sqsd writes `<UTC time, whole seconds, Z> <category>: <text>` to /var/log/aws-sqsd/default.log
(docs/aws-behaviour.md#log-file, #log-line), for example
`2026-12-02T01:00:00Z http-err: 5f1c... (2) 503 - 0.004`. The daemon logs each line through
Python logging (stderr from the command line), `attach_file` adds the same lines to a file, and
the notebooks' log file formats events with `sqsd_line`: all three use `describe`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Protocol

from labapp.settings import lab_home
from labapp.sqsd.events import DaemonEvent, EventKind

#: Where the real daemon writes on a worker instance (docs/aws-behaviour.md#log-file).
SQSD_LOG = "/var/log/aws-sqsd/default.log"

#: How loud each event is in Python logging: what sqsd writes always is INFO, its verbose lines DEBUG.
LEVELS = {
    EventKind.RECEIVED: logging.DEBUG,
    EventKind.POSTED: logging.INFO,
    EventKind.RESPONSE: logging.INFO,  # DEBUG for a 200: the daemon passes it
    EventKind.DELETED: logging.DEBUG,
    EventKind.RETRY_SCHEDULED: logging.DEBUG,
    EventKind.DROPPED_BY_RETENTION: logging.INFO,
    EventKind.RELEASED: logging.DEBUG,
    EventKind.SQS_ERROR: logging.WARNING,
}


def stamp(epoch: float) -> str:
    """sqsd's time stamp: UTC, whole seconds, e.g. 2026-12-02T01:00:00Z."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(event: DaemonEvent) -> str | None:
    """The sqsd log line for one event, without its time stamp; None for events sqsd does not log."""
    mid = event.message_id or "-"
    secs = f"{event.elapsed:.3f}" if event.elapsed is not None else "0.000"
    kind = event.kind
    if kind is EventKind.POSTED:
        url = event.url or (event.post.path if event.post is not None else "")
        # `%[` and `]` are literal in sqsd's own line: Ruby does not interpolate `%[` in a string.
        return f"message: sent to %[{url}]"
    if kind is EventKind.RESPONSE:
        if event.status == 200:
            return f"ok: {mid} - 200 - {secs}"
        if event.status is not None:
            return f"http-err: {mid} ({event.receive_count}) {event.status} - {secs}"
        code = event.detail.split(":", 1)[0] or "socket-error"
        if code == "conn-closed":
            return f"conn-closed: {mid} ({event.receive_count}) - {secs}"
        return f"socket-err: {mid} ({event.receive_count}) {code} - {secs}"
    if kind is EventKind.DELETED:
        return f"delete: {mid} - {secs}"
    if kind is EventKind.DROPPED_BY_RETENTION:
        return f"expired-msg: {mid} {event.detail} - {secs}"
    if kind is EventKind.RELEASED:
        return f"release: {mid} made visible again"
    if kind is EventKind.SQS_ERROR:
        # "<action> failed: <error>": the wording the chaos harness and older logs look for.
        action, _, error = event.detail.partition(": ")
        return f"{action} failed: {error}" + (f" ({mid})" if event.message_id else "")
    return None


def sqsd_line(event: DaemonEvent, queue: str = "") -> str | None:
    """Format one daemon event as a line of the sqsd log, or None (`queue` is no longer needed)."""
    text = describe(event)
    return None if text is None else f"{stamp(event.time)} {text}"


class SqsdFormatter(logging.Formatter):
    """Format log records as sqsd does: its time stamp, then the message."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{stamp(record.created)} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class HasLog(Protocol):
    log: logging.Logger


def default_log_path() -> Path:
    """Where `labapp daemon` keeps its log: logs/aws-sqsd/default.log under the lab home."""
    return lab_home() / "logs" / "aws-sqsd" / "default.log"


def attach_file(daemon: HasLog, path: str | Path | None = None) -> logging.Handler:
    """Append the daemon's log to `path` (default_log_path() when None) and return the handler.

    The file gets every line sqsd itself would write (INFO and up); remove the handler from
    `daemon.log` and close it to stop.
    """
    target = Path(path) if path is not None else default_log_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target, mode="a", encoding="utf-8")
    handler.setFormatter(SqsdFormatter())
    handler.setLevel(logging.INFO)
    daemon.log.addHandler(handler)
    if not daemon.log.isEnabledFor(logging.INFO):
        daemon.log.setLevel(logging.INFO)
    return handler
