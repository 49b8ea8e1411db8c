"""The web tier: a Flask app that takes a customer's order either in the request or through the queue.

`POST /orders/sync` does the work while the customer waits and answers 200 when it is done.
`POST /orders/async` checks the order, puts it on the worker queue and answers 202 Accepted at once,
with a status URL to come back to. A 202 is right here, because the customer is told the truth:
the order is accepted, not done. A worker answering 202 to sqsd is a failure instead, because sqsd
keeps the message and delivers it again (docs/aws-behaviour.md#status-202-redelivered).

Both endpoints read an order with the worker's own rules (`read_job`), so the web tier never
enqueues a message the worker would reject, and both apply it through a ledger, so the same order
applied twice counts once (docs/aws-behaviour.md#at-least-once).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from labapp.errors import LabError
from labapp.runtime.servers import HttpServer
from labapp.sqs import MAX_MESSAGE_BYTES, SqsClient, send_messages
from labapp.worker.ledger import Ledger
from labapp.worker.scenarios import MAX_WORK_MS, BadMessage, Job, parse_body, perform, read_job

log = logging.getLogger("labapp.webtier")

#: Where the web tier keeps its state in `app.extensions` (not the worker's key: HttpServer
#: wires a crash hook into any app under that one).
EXTENSION = "labapp.webtier"
#: The header a caller may set to follow one order through both tiers; the message carries it on.
REQUEST_ID_HEADER = "X-Request-Id"
#: The message attribute that carries the request id (sqsd forwards it as X-Aws-Sqsd-Attr-request-id).
REQUEST_ID_ATTRIBUTE = "request-id"
#: Waitress threads for the web tier: few, so that a flash sale shows what work in the request costs.
WEB_THREADS = 4
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
ORDER_KIND = "order"


class OrderStatus(str, enum.Enum):
    """What the web tier says of an order: its status, or the sync endpoint's result."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    QUEUED = "queued"


@dataclasses.dataclass
class WebTier:
    """The web tier's SQS client, queue, ledgers and the orders it enqueued; `of(app)` reaches it."""

    sqs: SqsClient
    queue_url: str
    ledger: Ledger
    worker_ledger: Ledger | None
    queued: set[str] = dataclasses.field(default_factory=set)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def applied(self, order_id: str) -> bool:
        """Return True when either tier has applied the order."""
        business_id = f"{ORDER_KIND}:{order_id}"
        ledgers = [self.ledger] + ([self.worker_ledger] if self.worker_ledger is not None else [])
        return any(ledger.applied(business_id) for ledger in ledgers)

    def close(self) -> None:
        """Close the ledger files."""
        self.ledger.close()
        if self.worker_ledger is not None:
            self.worker_ledger.close()


def of(app: Flask) -> WebTier:
    """Return the web tier's state of an app made by create_app."""
    tier: WebTier = app.extensions[EXTENSION]
    return tier


def create_app(
    sqs: SqsClient,
    queue_url: str,
    *,
    ledger_path: str | Path,
    worker_ledger_path: str | Path | None = None,
    work_ms: int = 0,
) -> Flask:
    """Build the web tier app; orders without `work_ms` take `work_ms` in the sync endpoint.

    `ledger_path` is the web tier's own ledger (the sync endpoint applies orders there); give the
    worker's as `worker_ledger_path` and the status route sees the orders the worker has applied.
    Pass the same file for both and an order applied once by each tier still counts once.
    """
    if isinstance(work_ms, bool) or not isinstance(work_ms, int) or not 0 <= work_ms <= MAX_WORK_MS:
        raise ValueError(f"work_ms must be a whole number from 0 to {MAX_WORK_MS}; got {work_ms!r}")
    app = Flask(__name__)
    # Flask answers 413 itself above this, before reading a body SQS could never carry.
    app.config.update(MAX_CONTENT_LENGTH=MAX_MESSAGE_BYTES, WORK_MS=work_ms)
    worker_ledger = None
    if worker_ledger_path is not None and Path(worker_ledger_path) != Path(ledger_path):
        worker_ledger = Ledger(worker_ledger_path)
    app.extensions[EXTENSION] = WebTier(sqs, queue_url, Ledger(ledger_path), worker_ledger)
    app.register_blueprint(orders)
    app.register_error_handler(HTTPException, _http_error)
    return app


def serve(app: Flask, *, port: int = 0, threads: int = WEB_THREADS) -> HttpServer:
    """Return a server for the web tier on 127.0.0.1 (a free port unless given); start it or use `with`."""
    return HttpServer(app, port=port, threads=threads)


def order_bodies(prefix: str, *, amount: float = 10.0, work_ms: int | None = None) -> Callable[[int], str]:
    """Return a function of n that writes order n as JSON, with the order id `{prefix}-{n}`."""

    def body(n: int) -> str:
        order: dict[str, Any] = {"type": ORDER_KIND, "order_id": f"{prefix}-{n}", "amount": amount}
        if work_ms is not None:
            order["work_ms"] = work_ms
        return json.dumps(order)

    return body


# -- the routes ----------------------------------------------------------------------------------
orders = Blueprint("orders", __name__)


def _answer(code: int, /, **fields: Any) -> Response:
    response = jsonify(**fields)
    response.status_code = code
    response.headers[REQUEST_ID_HEADER] = _request_id()
    return response


def _http_error(exc: HTTPException) -> Response:
    # Flask's own refusals (404, 405, 413) as one JSON reason, like every other answer here.
    return _answer(exc.code or 500, error=exc.description)


def _request_id() -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if _REQUEST_ID.fullmatch(given):
        return given
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    return str(g.request_id)


def _read_order() -> tuple[Job, str, str]:
    """Return the order's job, its order id and its body as text; raise BadMessage saying what is wrong."""
    raw = request.get_data()
    data = parse_body(raw)
    if data.get("type") != ORDER_KIND:
        raise BadMessage(f"this endpoint takes orders: field 'type' must be {ORDER_KIND!r}")
    job = read_job(data, current_app.config["WORK_MS"])
    return job, str(data["order_id"]), raw.decode("utf-8")


@orders.post("/orders/sync")
def take_order_now() -> Response:
    """Do the order's work in the request and answer 200 when it is done."""
    try:
        job, order_id, _ = _read_order()
    except BadMessage as exc:
        return _answer(400, error=str(exc))
    started = time.perf_counter()
    applied = perform(job, of(current_app).ledger, message_id=None)
    result = OrderStatus.APPLIED if applied else OrderStatus.DUPLICATE
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info("webtier: order %s %s in the request (%.0f ms)", order_id, result.value, took_ms)
    return _answer(200, order_id=order_id, result=result.value, took_ms=took_ms)


@orders.post("/orders/async")
def take_order_later() -> Response:
    """Check the order, put it on the queue and answer 202 Accepted with where to ask about it."""
    try:
        _, order_id, body = _read_order()
    except BadMessage as exc:
        return _answer(400, error=str(exc))
    tier = of(current_app)
    try:
        # The body goes on exactly as the customer sent it: the worker parses the same bytes.
        (message_id,) = send_messages(
            tier.sqs, tier.queue_url, [body], attributes={REQUEST_ID_ATTRIBUTE: _request_id()}
        )
    except (BotoCoreError, ClientError) as exc:
        log.warning("webtier: order %s not queued: %s", order_id, exc)
        return _answer(503, error=f"the queue did not take the order ({type(exc).__name__}); try again")
    except LabError as exc:
        return _answer(400, error=str(exc))
    with tier.lock:
        tier.queued.add(order_id)
    status_url = url_for("orders.order_status", order_id=order_id, _external=True)
    response = _answer(202, order_id=order_id, message_id=message_id, status_url=status_url)
    response.headers["Location"] = status_url
    return response


@orders.get("/orders/<order_id>")
def order_status(order_id: str) -> Response:
    """Say whether an order is applied, or queued and not yet applied; 404 for an order never seen."""
    tier = of(current_app)
    if tier.applied(order_id):
        return _answer(200, order_id=order_id, status=OrderStatus.APPLIED.value)
    with tier.lock:
        known = order_id in tier.queued
    if known:
        return _answer(200, order_id=order_id, status=OrderStatus.QUEUED.value)
    return _answer(404, error=f"no order {order_id!r} was taken here")
