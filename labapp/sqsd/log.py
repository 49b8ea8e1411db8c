"""The daemon's outcomes as log lines in the spirit of the real sqsd log (/var/log/aws-sqsd/default.log)."""

from __future__ import annotations

import datetime as dt

from labapp.sqsd.events import DaemonEvent, EventKind

#: Where the real daemon writes on a worker instance (docs/aws-behaviour.md#sqsd-log).
SQSD_LOG = "/var/log/aws-sqsd/default.log"


def sqsd_line(event: DaemonEvent, queue: str = "") -> str | None:
    """Format one daemon event as a line in the spirit of the real sqsd log."""
    when = dt.datetime.fromtimestamp(event.time, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    mid = event.message_id or "-"
    if event.kind is EventKind.POSTED and event.post is not None:
        return f"{when} message: {mid} ({event.receive_count}) sent to {event.post.path} from {queue}"
    if event.kind is EventKind.RESPONSE:
        elapsed = f"{event.elapsed:.3f}" if event.elapsed is not None else "-"
        if event.status == 200:
            return f"{when} http-ok: {mid} 200 - {elapsed}s"
        return f"{when} http-err: {mid} {event.status or event.detail.split(':')[0]} - {elapsed}s"
    if event.kind is EventKind.DELETED:
        return f"{when} message: {mid} deleted"
    if event.kind is EventKind.RETRY_SCHEDULED:
        return f"{when} message: {mid} ({event.receive_count}) {' '.join(event.detail.split())}"
    if event.kind in (EventKind.DROPPED_BY_RETENTION, EventKind.RELEASED, EventKind.SQS_ERROR):
        return f"{when} {event.kind}: {mid} {event.detail}".rstrip()
    return None
