"""The HTTP POST that sqsd makes from an SQS message, in AWS's form or the seed article's claim."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from labapp.errors import MessageError
from labapp.signature import message_headers
from labapp.sqsd.options import SqsdOptions, path_problem

SQSD_VERSION = "2.4"
USER_AGENT = f"aws-sqsd/{SQSD_VERSION}"

Encoding = Literal["sqsd", "article-form"]
ENCODINGS: tuple[Encoding, ...] = ("sqsd", "article-form")
ARTICLE_FORM_WARNING = (
    "article-form is the seed article's claim, not what AWS does: real sqsd sends the raw body "
    "with X-Aws-Sqsd-* headers."
)

# Attributes the daemon reads to recognise a periodic task; they are not passed on as Attr headers.
TASK_ATTRIBUTES = ("beanstalk.sqsd.path", "beanstalk.sqsd.task_name", "beanstalk.sqsd.scheduled_time")


@dataclasses.dataclass(frozen=True)
class Post:
    """One request as the daemon will put it on the wire."""

    path: str
    headers: dict[str, str]
    body: bytes

    def request_line(self) -> str:
        return f"POST {self.path} HTTP/1.1"

    @property
    def closes(self) -> bool:
        """True when the connection is closed after this request (a periodic task's POST)."""
        return self.headers.get("Connection") == "close"


def iso_utc(epoch_ms: str | int | float) -> str:
    """Format an SQS millisecond timestamp the way sqsd does, e.g. 2019-11-14T00:47:00Z."""
    moment = dt.datetime.fromtimestamp(int(epoch_ms) / 1000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _attribute_value(attribute: Mapping[str, Any]) -> str | None:
    # Binary attributes are not passed to the application, as on AWS.
    if str(attribute.get("DataType", "")).startswith(("String", "Number")):
        return str(attribute.get("StringValue", ""))
    return None


# What the cron leader writes (Ruby's Time#to_s, "2026-12-02 01:00:00 UTC") and the ISO forms.
_SCHEDULED_FORMATS = ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z")


def scheduled_at(value: str) -> str:
    """Normalise a task's scheduled time to ISO-8601 UTC as sqsd does (docs/aws-behaviour.md#hdr-scheduled-at).

    A value no format reads is passed on as it is (folded for HTTP), so the app still sees it.
    """
    text = value.strip()
    for pattern in _SCHEDULED_FORMATS:
        try:
            moment = dt.datetime.strptime(text.replace("Z", "+0000"), pattern)
        except ValueError:
            continue
        if moment.tzinfo is None:  # %Z accepts "UTC" and "GMT" but leaves the result naive
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return header_value(value)


# Control characters other than tab cannot appear in an HTTP field value.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_value(value: str) -> str:
    """Fold a value HTTP cannot carry verbatim, as RFC 9110 §5.5 allows: controls become spaces,
    and leading or trailing spaces and tabs go (a receiver would drop them anyway)."""
    return _CONTROLS.sub(" ", value).strip(" \t")


def build_post(
    message: Mapping[str, Any],
    queue_name: str,
    options: SqsdOptions,
    encoding: Encoding = "sqsd",
    secret: str | None = None,
) -> Post:
    """Build the POST for one received message (the receipt handle is never part of it).

    Raise MessageError when a periodic task's path is not a plain local path: the POST would
    otherwise go to whatever host the message names.
    """
    attributes = message.get("Attributes", {})
    message_attributes = message.get("MessageAttributes", {}) or {}
    task = {
        name: _attribute_value(message_attributes[name])
        for name in TASK_ATTRIBUTES
        if name in message_attributes
    }
    # sqsd knows a periodic task by its scheduled time (docs/aws-behaviour.md#cron-detect).
    is_task = "beanstalk.sqsd.scheduled_time" in task

    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": options.MimeType,
        "X-Aws-Sqsd-Msgid": str(message["MessageId"]),
        "X-Aws-Sqsd-Receive-Count": str(attributes.get("ApproximateReceiveCount", "1")),
        "X-Aws-Sqsd-Queue": queue_name,
        "X-Aws-Sqsd-First-Received-At": iso_utc(attributes.get("ApproximateFirstReceiveTimestamp", 0)),
        "X-Aws-Sqsd-Sent-At": iso_utc(attributes.get("SentTimestamp", 0)),
        "X-Aws-Sqsd-Sender-Id": str(attributes.get("SenderId", "")),
        "X-Aws-Sqsd-Path": header_value(task.get("beanstalk.sqsd.path") or ""),
    }
    for name, attribute in sorted(message_attributes.items()):
        value = _attribute_value(attribute)
        if value is not None and name not in TASK_ATTRIBUTES:
            headers[f"X-Aws-Sqsd-Attr-{name}"] = header_value(value)

    path = options.HttpPath
    body = str(message.get("Body", "")).encode("utf-8")
    if is_task:
        # A periodic task goes to its own URL with an empty body.
        path = task.get("beanstalk.sqsd.path") or options.HttpPath
        problem = path_problem(path)
        if problem:
            raise MessageError(f"beanstalk.sqsd.path {path!r} is not a local path: {problem}")
        headers["X-Aws-Sqsd-Taskname"] = header_value(task.get("beanstalk.sqsd.task_name") or "")
        headers["X-Aws-Sqsd-Scheduled-At"] = scheduled_at(task.get("beanstalk.sqsd.scheduled_time") or "")
        # em-http sends a task's POST without keep-alive, so the connection closes after it.
        headers["Connection"] = "close"
        body = b""
    elif encoding == "article-form":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urlencode(
            {"SQSMessageBody": message.get("Body", ""), "SQSMMessageId": message["MessageId"]}
        ).encode()
    if secret:
        headers.update(message_headers(secret, headers["X-Aws-Sqsd-Msgid"], body))
    return Post(path=path, headers=headers, body=body)
