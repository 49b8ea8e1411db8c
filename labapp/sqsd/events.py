"""What the daemon tells its listeners: one event per step of the loop, named by an EventKind."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from labapp.sqsd.post import Post


class EventKind(str, enum.Enum):
    """The steps of sqsd's loop, in the order a message meets them (docs/aws-behaviour.md#outcomes)."""

    RECEIVED = "received"
    POSTED = "posted"
    RESPONSE = "response"
    DELETED = "deleted"
    RETRY_SCHEDULED = "retry_scheduled"
    DROPPED_BY_RETENTION = "dropped_by_retention"
    RELEASED = "released"
    SQS_ERROR = "sqs_error"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class DaemonEvent:
    """Something the daemon did; widgets, tests and logs subscribe to these."""

    kind: EventKind
    time: float
    message_id: str | None = None
    receive_count: int | None = None
    status: int | None = None
    elapsed: float | None = None
    detail: str = ""
    post: Post | None = None
    url: str | None = None  # where a POST went (posted events)


Listener = Callable[[DaemonEvent], object]  # any return value is ignored
