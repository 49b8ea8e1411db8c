"""A POST inspector: each delivery exactly as it reached the worker, and sqsd vs the article's form.

The deliveries come from the worker's own recording (`lab.requests()`), so what is shown is what
was on the wire, not what the daemon meant to send. The comparison builds both encodings of one
message with `build_post` and highlights every line where they differ.
"""

from __future__ import annotations

import datetime as dt
import html
import time
import uuid
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import ipywidgets as w

from labapp.sqsd import ARTICLE_FORM_WARNING, SqsdOptions, build_post
from labapp.widgets._common import (
    COLORS,
    TextFallback,
    Ticker,
    close_all,
    join_lab,
    lab_name,
    lab_running,
    line,
    no_lab,
)
from labapp.worker import RecordedRequest

SHOW = 5
MAX_BODY_CHARS = 4000
HEX_BYTES = 256
SAMPLE_BODY = '{"type": "order", "order_id": "A-1", "amount": 10}'
PRE = 'style="white-space:pre-wrap;word-break:break-all;font-size:12px;margin:2px 0"'
NAME = 'style="text-align:left;font-weight:normal;font-family:monospace;font-size:12px"'


def body_text(body: bytes) -> str:
    """Return body bytes as safe HTML: UTF-8 text with control characters escaped, else a hex dump."""
    size = f"{len(body)} byte{'s' if len(body) != 1 else ''}"
    if not body:
        return f"<i>(empty body, {size})</i>"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        chunk = body[:HEX_BYTES]
        rows = [chunk[i : i + 16].hex(" ") for i in range(0, len(chunk), 16)]
        more = f"\n… {len(body) - HEX_BYTES} more bytes" if len(body) > HEX_BYTES else ""
        return f"<i>(not UTF-8, {size}, shown as hex)</i>\n" + "\n".join(rows) + more
    cut = text[:MAX_BODY_CHARS]
    visible = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in cut)
    more = f"\n… {len(text) - MAX_BODY_CHARS} more characters" if len(text) > MAX_BODY_CHARS else ""
    return f"<i>({size})</i>\n{html.escape(visible + more, quote=False)}"


def status_html(status: int | None) -> str:
    """Return the worker's answer as a coloured label, and what sqsd does with it."""
    if status is None:
        return line("no answer yet", "muted")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    then = "sqsd deletes the message" if status == 200 else "sqsd retries it after ErrorVisibilityTimeout"
    return line(f"{status} {phrase}: {then}", "ok" if status == 200 else "bad")


def request_html(request: RecordedRequest) -> str:
    """Return one recorded request as it was on the wire, and the worker's answer."""
    head = "\n".join([request.request_line, *(f"{name}: {value}" for name, value in request.headers)])
    summary = (
        f"<code>{html.escape(request.request_line)}</code> → {status_html(request.status)} "
        f"<small>{time.strftime('%H:%M:%S', time.localtime(request.at))}</small>"
    )
    return (
        f"<details><summary>{summary}</summary>"
        f"<pre {PRE}>{html.escape(head, quote=False)}\n\n{body_text(request.body)}</pre></details>"
    )


def _epoch_ms(iso: str | None) -> int:
    try:
        moment = dt.datetime.strptime(iso or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return int(time.time() * 1000)
    return int(moment.timestamp() * 1000)


def message_from_request(request: RecordedRequest) -> dict[str, Any] | None:
    """Rebuild the SQS message behind a recorded sqsd POST (either encoding), or None if it is not one."""
    message_id = request.header("X-Aws-Sqsd-Msgid")
    if message_id is None:
        return None
    body = request.body.decode("utf-8", errors="replace")
    if body.startswith("SQSMessageBody="):
        body = parse_qs(body).get("SQSMessageBody", [""])[0]
    prefix = "x-aws-sqsd-attr-"
    attributes = {
        name[len(prefix) :]: {"DataType": "String", "StringValue": value}
        for name, value in request.headers
        if name.lower().startswith(prefix)
    }
    return {
        "MessageId": message_id,
        "Body": body,
        "Attributes": {
            "ApproximateReceiveCount": request.header("X-Aws-Sqsd-Receive-Count") or "1",
            "ApproximateFirstReceiveTimestamp": str(
                _epoch_ms(request.header("X-Aws-Sqsd-First-Received-At"))
            ),
            "SentTimestamp": str(_epoch_ms(request.header("X-Aws-Sqsd-Sent-At"))),
            "SenderId": request.header("X-Aws-Sqsd-Sender-Id") or "",
        },
        "MessageAttributes": attributes,
    }


def sample_message(body: str = SAMPLE_BODY) -> dict[str, Any]:
    """Return a made-up received message, for comparing encodings before anything was delivered."""
    now = str(int(time.time() * 1000))
    return {
        "MessageId": str(uuid.uuid4()),
        "Body": body,
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "ApproximateFirstReceiveTimestamp": now,
            "SentTimestamp": now,
            "SenderId": "AIDAEXAMPLEEXAMPLE",
        },
        "MessageAttributes": {"tenant": {"DataType": "String", "StringValue": "acme"}},
    }


def _cell(text: str) -> str:
    return f"<td><pre {PRE}>{text}</pre></td>"


Row = tuple[str, str, str]


def compare_rows(message: dict[str, Any], queue_name: str, options: SqsdOptions) -> list[Row]:
    """Return (part, as sqsd sends it, as the seed article claims) for the request line, each header, the body."""
    real = build_post(message, queue_name, options, "sqsd")
    claim = build_post(message, queue_name, options, "article-form")
    rows = [("request line", real.request_line(), claim.request_line())]
    names = list(real.headers) + [name for name in claim.headers if name not in real.headers]
    rows += [(name, real.headers.get(name, "—"), claim.headers.get(name, "—")) for name in names]
    rows.append(("body", body_text(real.body), body_text(claim.body)))
    return rows


def differing(rows: list[Row]) -> list[str]:
    """Return the parts whose two encodings differ, in table order."""
    return [name for name, left, right in rows if left != right]


def compare_html(message: dict[str, Any], queue_name: str, options: SqsdOptions) -> str:
    """Show one message as sqsd really POSTs it and as the seed article claims, differences marked."""
    table = []
    for name, left, right in compare_rows(message, queue_name, options):
        mark = f' style="background:{COLORS["mark"]}"' if left != right else ""
        if name != "body":  # body_text() is HTML already; the rest is text from the wire
            left, right = html.escape(left, quote=False), html.escape(right, quote=False)
        table.append(f"<tr{mark}><th {NAME}>{html.escape(name)}</th>{_cell(left)}{_cell(right)}</tr>")
    return (
        f'<div style="border-left:4px solid {COLORS["bad"]};padding:4px 8px;margin:6px 0">'
        f"<b>Warning:</b> {html.escape(ARTICLE_FORM_WARNING, quote=False)}</div>"
        f'<table style="border-collapse:collapse;table-layout:fixed;width:100%">'
        '<tr><th style="width:22%"></th><th>sqsd (what AWS sends)</th>'
        "<th>article-form (the seed article's claim)</th></tr>"
        + "".join(table)
        + f"</table><small>Highlighted rows differ. Message {html.escape(str(message['MessageId']))}.</small>"
    )


class PostInspector(TextFallback, w.VBox):
    """The last deliveries exactly as received, and one message in both encodings side by side."""

    def __init__(self, lab: Any, show: int = SHOW, live: bool = True) -> None:
        self.lab = lab
        self.show = show
        self._signature: tuple[tuple[int, int | None], ...] | None = None
        #: The parts that differ between the two encodings, and (source, message id) compared.
        self.differences: list[str] = []
        self.compared: tuple[str, str] = ("nothing yet", "")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.live = w.ToggleButton(live, description="Live", icon="circle", tooltip="refresh twice a second")
        self.status = w.HTML()
        self.deliveries = w.HTML()
        self.compare = w.HTML()
        self.refresh_button.on_click(lambda _: self.refresh(force=True))
        self.live.observe(self._live_changed, names="value")
        self._ticker = Ticker(self._tick, 0.5, "lab-post-inspector")
        super().__init__(
            [
                w.HBox([self.refresh_button, self.live, self.status]),
                w.HTML("<b>Deliveries, newest first, exactly as the worker received them</b>"),
                self.deliveries,
                w.HTML("<b>One message in both encodings</b>"),
                self.compare,
            ]
        )
        self.add_class("lab-post-inspector")
        join_lab(lab, self)
        self.refresh(force=True)
        if live:
            self._ticker.start()

    def refresh(self, force: bool = False) -> bool:
        """Redraw when a delivery arrived or was answered (or always, with force); False if stopped."""
        if not lab_running(self.lab):
            self.status.value = line("The lab is stopped; showing the last deliveries seen.", "bad")
            return False
        requests: list[RecordedRequest] = self.lab.requests(self.show)
        signature = tuple((id(r), r.status) for r in requests)
        if signature == self._signature and not force:
            return True
        self._signature = signature
        if requests:
            self.deliveries.value = "".join(request_html(r) for r in reversed(requests))
            # The newest delivery opens by itself; the older ones stay folded.
            self.deliveries.value = self.deliveries.value.replace("<details>", "<details open>", 1)
        else:
            self.deliveries.value = line("No deliveries yet: send a message and it appears here.")
        message = next((m for m in map(message_from_request, reversed(requests)) if m), None)
        source = "the newest delivery" if message else "a sample message (nothing delivered yet)"
        shown = message or sample_message()
        self.differences = differing(compare_rows(shown, self.lab.queues.name, self.lab.options))
        self.compared = (source, str(shown["MessageId"]))
        self.compare.value = f"<small>Built from {source}.</small>" + compare_html(
            shown, self.lab.queues.name, self.lab.options
        )
        self.status.value = line(f"{len(requests)} shown, {time.strftime('%H:%M:%S')}")
        return True

    def _tick(self) -> bool:
        return self.refresh()

    def _live_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._ticker.start()
        else:
            self._ticker.stop()

    def text(self) -> str:
        """Return the inspector's text fallback."""
        return f"POST inspector of {lab_name(self.lab)}: each POST exactly as it arrived (shown in the live notebook)."

    def close(self) -> None:
        """Stop refreshing and close every part of the widget."""
        self._ticker.stop()
        close_all(*self.children)
        super().close()


def post_inspector(lab: Any) -> w.Widget:
    """Show each POST exactly as the worker got it, and sqsd vs the article's form side by side."""
    if not lab_running(lab):
        return no_lab("POST inspector")
    return PostInspector(lab)
