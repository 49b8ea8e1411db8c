"""A dead-letter queue explorer: look at what failed, then redrive some or all of it, or purge."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as w
from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import LabError
from labapp.sqs import move_selected, purge
from labapp.widgets._common import (
    TextFallback,
    Ticker,
    close_all,
    join_lab,
    lab_name,
    lab_running,
    line,
    no_lab,
)

PREVIEW_CHARS = 50
LISTED = 10  # messages the list shows, oldest first
SELECTED_METHOD = "receive-send-delete (selected ids only)"
#: How often the explorer looks whether the DLQ's depth changed (a message moved in, a redrive).
FOLLOW_HZ = 1

T = TypeVar("T")


def _when(epoch_ms: str | None) -> str:
    if not epoch_ms:
        return "—"
    moment = dt.datetime.fromtimestamp(int(epoch_ms) / 1000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        return body


def label(message: dict[str, Any]) -> str:
    """Return one line that identifies a DLQ message in the list."""
    body = " ".join(str(message.get("Body", "")).split())
    preview = body if len(body) <= PREVIEW_CHARS else body[: PREVIEW_CHARS - 1] + "…"
    count = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
    return f"{message['MessageId'][:8]} · received {count}× · {preview}"


def detail_html(message: dict[str, Any]) -> str:
    """Show one DLQ message: body, message attributes and the SQS attributes that tell its story."""
    attributes = message.get("Attributes", {})
    rows = [
        ("MessageId", message["MessageId"]),
        ("ApproximateReceiveCount", attributes.get("ApproximateReceiveCount", "—")),
        ("sent", _when(attributes.get("SentTimestamp"))),
        ("first received", _when(attributes.get("ApproximateFirstReceiveTimestamp"))),
    ]
    for name, value in sorted((message.get("MessageAttributes") or {}).items()):
        shown = value.get("StringValue", f"<{value.get('DataType', '?')}>")
        rows.append((f"attribute {name}", f"{shown} ({value.get('DataType', '?')})"))
    table = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    body = html.escape(_pretty(str(message.get("Body", ""))), quote=False)
    return (
        f"<table>{table}</table><pre style='white-space:pre-wrap;font-size:12px'>{body}</pre>"
        "<small>The explorer looks without receiving (the emulator lists the queue), so looking "
        "leaves this count as it is; on real SQS every look would be a receive and count.</small>"
    )


class DlqExplorer(TextFallback, w.VBox):
    """List DLQ messages, show one, and redrive the selected ones or all of them, or purge."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.found: dict[str, dict[str, Any]] = {}
        self._depth_shown: int | None = None
        self.last_method: str | None = None
        self.messages = w.SelectMultiple(options=[], rows=6, layout=w.Layout(width="95%"))
        self.detail = w.HTML()
        self.status = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.redrive_selected_button = w.Button(description="Redrive selected", icon="reply")
        self.redrive_all_button = w.Button(description="Redrive all", icon="reply-all")
        self.purge_button = w.Button(description="Purge DLQ", icon="trash", button_style="danger")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.redrive_selected_button.on_click(lambda _: self.redrive_selected())
        self.redrive_all_button.on_click(lambda _: self.redrive_all())
        self.purge_button.on_click(lambda _: self.purge())
        self.messages.observe(self._show_detail, names="value")
        buttons = [
            self.refresh_button,
            self.redrive_selected_button,
            self.redrive_all_button,
            self.purge_button,
        ]
        super().__init__([w.HBox(buttons), self.status, self.messages, self.detail])
        self.add_class("lab-dlq-explorer")
        join_lab(lab, self)
        self.refresh()
        # Messages arrive in the DLQ (and leave it) while the learner reads: list them without a click.
        self._follower = Ticker(self.follow, 1 / FOLLOW_HZ, "lab-dlq-explorer")
        self._follower.start()

    def follow(self) -> bool:
        """Refresh when the DLQ's depth changed; return False once the lab has stopped."""
        if not lab_running(self.lab):
            return False
        try:
            depth = self.lab.depth().dead_letter
        except (BotoCoreError, ClientError, LabError):
            return True  # the next tick tries again; refresh() says what failed if it lasts
        if depth != self._depth_shown:
            self.refresh()
        return True

    def refresh(self, note: str = "", tone: str = "muted") -> None:
        """Peek at the DLQ again and list what is there."""
        if not self._can_act():
            return
        try:
            peeked = self.lab.dead_letters(LISTED)
            total = self.lab.depth().dead_letter
        except (BotoCoreError, ClientError, LabError) as exc:
            self.status.value = line(f"Could not read the DLQ: {exc}", "bad")
            return
        self.found = {m["MessageId"]: m for m in peeked}
        kept = tuple(i for i in self.messages.value if i in self.found)
        self.messages.options = [(label(m), m["MessageId"]) for m in peeked]
        self.messages.value = kept
        self._depth_shown = total
        shown = f"{len(peeked)} shown" + (f" (the oldest {LISTED})" if total > len(peeked) else "")
        summary = f"DLQ {self.lab.queues.dlq_name}: {total} message(s), {shown}."
        self.status.value = (line(note, tone) + "<br>" if note else "") + line(summary)
        self._show_detail()

    def _show_detail(self, _change: Any = None) -> None:
        chosen = [self.found[i] for i in self.messages.value if i in self.found]
        self.detail.value = (
            "".join(detail_html(m) for m in chosen[:3]) if chosen else line("Select a message to see it.")
        )

    def redrive_selected(self) -> int:
        """Move the selected messages back to the worker queue; return how many moved."""
        chosen = list(self.messages.value)
        if not chosen:
            self.refresh("Select one or more messages first.", "bad")
            return 0
        queues = self.lab.queues
        moved = self._attempt(lambda: move_selected(self.lab.sqs, queues.dlq_url, queues.url, chosen))
        if moved is None:
            return 0
        self.last_method = SELECTED_METHOD
        self.refresh(f"Moved {len(moved)} message(s) back to the worker queue with {SELECTED_METHOD}.", "ok")
        return len(moved)

    def redrive_all(self) -> int:
        """Move every DLQ message back (StartMessageMoveTask where the endpoint has it)."""
        result = self._attempt(self.lab.redrive)
        if result is None:
            return 0
        self.last_method, moved = result
        self.refresh(f"Moved {moved} message(s) back to the worker queue with {self.last_method}.", "ok")
        return int(moved)

    def purge(self) -> bool:
        """Delete every message in the DLQ."""

        how = self._attempt(lambda: purge(self.lab.sqs, self.lab.queues.dlq_url))
        if how is None:
            return False
        self.last_method = how
        if how == "PurgeQueue":
            self.refresh("Purged the DLQ with PurgeQueue (on AWS it can take up to 60 s).", "ok")
        else:
            self.refresh(
                "SQS allows one PurgeQueue a minute, so the DLQ was emptied message by message.", "ok"
            )
        return True

    def _attempt(self, action: Callable[[], T]) -> T | None:
        if not self._can_act():
            return None
        try:
            return action()
        except (BotoCoreError, ClientError, LabError) as exc:
            self.refresh(f"That failed: {exc}", "bad")
            return None

    def _can_act(self) -> bool:
        if lab_running(self.lab):
            return True
        self.status.value = line("The lab is stopped; start it again to look at its DLQ.", "bad")
        return False

    def text(self) -> str:
        """Return the explorer's text fallback."""
        return f"Dead-letter queue explorer of {lab_name(self.lab)} (look, redrive and purge in the live notebook)."

    def close(self) -> None:
        """Stop following the DLQ and close every part of the widget."""
        self._follower.stop()
        close_all(*self.children)
        super().close()


def dlq_explorer(lab: Any) -> w.Widget:
    """List the lab's dead letters, inspect one, redrive selected or all, or purge the DLQ."""
    if not lab_running(lab):
        return no_lab("DLQ explorer")
    return DlqExplorer(lab)
