"""A message composer: a JSON body checked as you type, attributes, a count, a delay, and Send.

As you type it also measures the message against SQS's own rules, so the limits are in view
where messages are made: at most 1 MiB with the attributes (docs/aws-behaviour.md#sqs-message-size)
and at most 10 attributes (docs/aws-behaviour.md#sqs-max-attributes). What SQS would refuse
cannot be sent.
"""

from __future__ import annotations

import html
import itertools
import json
from typing import Any

import ipywidgets as w
from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import LabError
from labapp.sqs import (
    MAX_ATTRIBUTES,
    MAX_DELAY_S,
    MAX_MESSAGE_BYTES,
    check_attributes,
    check_body,
    send_messages,
    string_attributes,
)
from labapp.widgets._common import TextFallback, close_all, join_lab, lab_name, lab_running, line, no_lab

DEFAULT_BODY = '{"type": "order", "order_id": "A-1", "amount": 10}'
MAX_COUNT = 10_000
SHOW_IDS = 10
BATCH = 10  # send_messages reports progress once per SendMessageBatch


def body_error(text: str) -> str | None:
    """Return why text is not a JSON document, or None when it is."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    return None


def parse_attributes(text: str) -> dict[str, str]:
    """Turn `name=value` lines into String message attributes; raise ValueError naming a bad line."""
    attributes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        name, sep, value = raw.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"Attribute line {number} must look like name=value; got {raw.strip()!r}.")
        attributes[name.strip()] = value.strip()
    return attributes


def size_line(size: int, attributes: int) -> str:
    """Return a message's size and attribute count against SQS's limits, as one sentence."""
    return (
        f"{size:,} bytes of SQS's {MAX_MESSAGE_BYTES:,} (1 MiB, attributes included); "
        f"{attributes} of {MAX_ATTRIBUTES} attributes."
    )


class Composer(TextFallback, w.VBox):
    """Compose a message and send it `count` times to the lab's worker queue."""

    def __init__(self, lab: Any, body: str = DEFAULT_BODY) -> None:
        self.lab = lab
        self.sent_ids: list[str] = []
        self.body = w.Textarea(value=body, description="Body", layout=w.Layout(width="95%", height="90px"))
        self.body_check = w.HTML()
        self.attributes = w.Textarea(
            value="",
            description="Attributes",
            placeholder="one name=value a line, e.g. tenant=acme (sent as X-Aws-Sqsd-Attr-tenant)",
            layout=w.Layout(width="95%", height="60px"),
        )
        self.count = w.BoundedIntText(value=1, min=1, max=MAX_COUNT, description="Count")
        self.delay = w.BoundedIntText(value=0, min=0, max=MAX_DELAY_S, description="Delay (s)")
        self.send_button = w.Button(description="Send", icon="paper-plane", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="Sending")
        self.progress.layout.display = "none"
        self.result = w.HTML()
        self.body.observe(self._check, names="value")
        self.attributes.observe(self._check, names="value")
        self.send_button.on_click(lambda _: self.send())
        super().__init__(
            [
                self.body,
                self.body_check,
                self.attributes,
                w.HBox([self.count, self.delay, self.send_button]),
                self.progress,
                self.result,
            ]
        )
        self.add_class("lab-composer")
        self._check()
        join_lab(lab, self)

    def _measure(self) -> tuple[str | None, str]:
        """Return (what SQS or the worker would refuse, or None; the size line)."""
        error = body_error(self.body.value)
        if error is not None:
            return error, ""
        try:
            attributes = parse_attributes(self.attributes.value)
            size = check_body(self.body.value, check_attributes(string_attributes(attributes)))
        except (ValueError, LabError) as exc:
            return str(exc), ""
        return None, size_line(size, len(attributes))

    def _problem(self) -> str | None:
        return self._measure()[0]

    def _check(self, _change: Any = None) -> None:
        error, size = self._measure()
        self.body_check.value = line(error, "bad") if error else line(f"Valid JSON. {size}", "ok")
        self.send_button.disabled = error is not None

    def send(self) -> list[str]:
        """Send the body `count` times with the attributes and delay; show and return the ids."""
        error = self._problem()
        if error is not None:
            self.result.value = line(f"Nothing sent. {error}", "bad")
            return []
        if not lab_running(self.lab):
            self.result.value = line("Nothing sent: the lab is stopped; start it again first.", "bad")
            return []
        count = self.count.value
        self.progress.max, self.progress.value = count, 0
        self.progress.layout.display = None if count > BATCH else "none"
        try:
            ids = send_messages(
                self.lab.sqs,
                self.lab.queues.url,
                itertools.repeat(self.body.value, count),
                parse_attributes(self.attributes.value),
                self.delay.value,
                progress=self._advance,
            )
        except (LabError, BotoCoreError, ClientError) as exc:
            self.result.value = line(f"SQS refused the send: {exc}", "bad")
            return []
        self.sent_ids.extend(ids)
        self.result.value = _ids_html(ids, self.delay.value)
        return ids

    def _advance(self, sent: int) -> None:
        self.progress.value += sent

    def text(self) -> str:
        """Return the composer's text fallback."""
        return f"Message composer for {lab_name(self.lab)} (write and send messages in the live notebook)."

    def close(self) -> None:
        """Close every part of the widget."""
        close_all(*self.children)
        super().close()


def _ids_html(ids: list[str], delay: int) -> str:
    shown = "".join(f"<li><code>{html.escape(i)}</code></li>" for i in ids[:SHOW_IDS])
    more = f"<li>… and {len(ids) - SHOW_IDS} more</li>" if len(ids) > SHOW_IDS else ""
    when = f", visible in {delay} s" if delay else ""
    return f"{line(f'Sent {len(ids)} message(s){when}. MessageId:', 'ok')}<ul>{shown}{more}</ul>"


def composer(lab: Any, body: str = DEFAULT_BODY) -> w.Widget:
    """Compose and send messages to the lab's queue: JSON body (starting as `body`), attributes, count, delay."""
    if not lab_running(lab):
        return no_lab("composer")
    return Composer(lab, body)
