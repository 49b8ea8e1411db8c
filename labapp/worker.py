"""The Flask worker app: three idempotent scenarios, failure injection, and a request inspector."""

from __future__ import annotations

import csv
import hmac
import io
import ipaddress
import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from labapp.errors import ConfigError
from labapp.failures import FailureSwitch
from labapp.inspector import Inspector
from labapp.ledger import Ledger
from labapp.post import SIGNATURE_HEADER, sign

log = logging.getLogger("labapp.worker")

MAX_WORK_MS = 600_000
HANG_LIMIT_S = 3600  # a hang ends by itself after an hour so no thread is stuck forever

messages = Blueprint("messages", __name__)
control = Blueprint("control", __name__, url_prefix="/_lab")


class BadMessage(ValueError):
    """The message can never succeed as it is; the worker answers 400 with this reason."""


# -- the scenarios -------------------------------------------------------------------------------
def _required(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None or isinstance(value, (dict, list, bool)) or str(value).strip() == "":
        raise BadMessage(f"field {field!r} is missing or empty")
    return str(value)


def _work_ms(data: Mapping[str, Any]) -> int:
    value = data.get("work_ms", current_app.config["WORK_MS"])
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WORK_MS:
        raise BadMessage(f"work_ms must be a whole number from 0 to {MAX_WORK_MS}")
    return value


def order(data: Mapping[str, Any]) -> list[str]:
    """Charge an order once: the business id is the order id."""
    order_id = _required(data, "order_id")
    amount = data.get("amount")
    if (
        isinstance(amount, bool)
        or not isinstance(amount, (int, float))
        or not math.isfinite(amount)
        or amount < 0
    ):
        raise BadMessage("field 'amount' must be a number >= 0")
    return [f"order:{order_id}"]


def thumbnail(data: Mapping[str, Any]) -> list[str]:
    """Make thumbnails of one image (the work is simulated by work_ms of waiting)."""
    image_id = _required(data, "image_id")
    sizes = data.get("sizes", [128])
    if (
        not isinstance(sizes, list)
        or not sizes
        or not all(isinstance(s, int) and 8 <= s <= 4096 for s in sizes)
    ):
        raise BadMessage("field 'sizes' must be a non-empty list of pixel sizes from 8 to 4096")
    return [f"thumbnail:{image_id}:{size}" for size in sizes]


def csv_import(data: Mapping[str, Any]) -> list[str]:
    """Import every row of a CSV file, or none: a bad row rejects the whole file with its line number."""
    import_id = _required(data, "import_id")
    text = data.get("csv")
    if not isinstance(text, str) or not text.strip():
        raise BadMessage("field 'csv' must hold the CSV text, header row first")
    reader = csv.reader(io.StringIO(text))
    try:
        # Blank lines are skipped, so a row's number is the reader's line, not its index.
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise BadMessage(f"CSV line {reader.line_num} cannot be read: {exc}") from None
    (_, header), body = rows[0], rows[1:]
    if not body:
        raise BadMessage("the CSV has a header but no rows")
    for number, row in body:
        if len(row) != len(header):
            raise BadMessage(f"CSV line {number} has {len(row)} fields; the header has {len(header)}")
    return [f"import:{import_id}:{row_number}" for row_number in range(2, len(body) + 2)]


SCENARIOS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "order": order,
    "thumbnail": thumbnail,
    "csv_import": csv_import,
}


def _parse(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(f"body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadMessage("body is empty; send a JSON object")
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadMessage("body is JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        hint = (
            " (it looks form-encoded; real sqsd sends the raw body)"
            if text.startswith("SQSMessageBody=")
            else ""
        )
        raise BadMessage(f"body is not valid JSON: {exc.msg} at character {exc.pos}{hint}") from None
    if not isinstance(data, dict):
        raise BadMessage("body must be a JSON object")
    return data


def _short(value: Any, limit: int = 60) -> str:
    # A reason is one short line whatever the sender put in the field.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad(reason: str, status: int = 400) -> Response:
    response = jsonify(error=reason)
    response.status_code = status
    return response


@messages.post("/", defaults={"path": ""})
@messages.post("/<path:path>")
def handle_message(path: str) -> Response:
    """Process one message POSTed by the daemon and answer 200 only when it is done."""
    message_id = request.headers.get("X-Aws-Sqsd-Msgid", "-")
    count_header = request.headers.get("X-Aws-Sqsd-Receive-Count", "1").strip()
    receive_count = int(count_header) if count_header.isascii() and count_header.isdigit() else 1
    try:
        data = _parse(request.get_data())
        kind = data.get("type")
        if not isinstance(kind, str) or kind not in SCENARIOS:
            raise BadMessage(f"field 'type' must be one of {', '.join(SCENARIOS)}; got {_short(kind)}")
        business_ids = SCENARIOS[kind](data)
        work_ms = _work_ms(data)
    except BadMessage as exc:
        log.warning("worker: rejected msgid=%s receive_count=%s: %s", message_id, receive_count, exc)
        return _bad(str(exc))
    if work_ms:
        threading.Event().wait(work_ms / 1000)
    ledger: Ledger = current_app.extensions["lab.ledger"]
    applied = [bid for bid in business_ids if ledger.apply(bid, kind, message_id, receive_count)]
    outcome = "applied" if applied else "duplicate"
    log.info("worker: %s %s msgid=%s receive_count=%s", kind, outcome, message_id, receive_count)
    return jsonify(result=outcome, business_ids=business_ids, applied=len(applied))


@messages.post("/tasks/<name>")
def handle_task(name: str) -> Response:
    """Run a periodic task once per scheduled time (the body of a task POST is empty)."""
    scheduled_at = request.headers.get("X-Aws-Sqsd-Scheduled-At", "")
    if not scheduled_at:
        return _bad("a periodic task POST needs the X-Aws-Sqsd-Scheduled-At header")
    ledger: Ledger = current_app.extensions["lab.ledger"]
    applied = ledger.apply(f"task:{name}:{scheduled_at}", "task", request.headers.get("X-Aws-Sqsd-Msgid"))
    log.info("worker: task %s scheduled at %s %s", name, scheduled_at, "ran" if applied else "duplicate")
    return jsonify(result="applied" if applied else "duplicate", task=name, scheduled_at=scheduled_at)


# -- lab controls --------------------------------------------------------------------------------
@control.get("/health")
def health() -> Response:
    """Report that the worker answers, with its ledger counts and failure settings."""
    app = current_app
    daemon = app.extensions.get("lab.daemon")
    return jsonify(
        ok=True,
        daemon=f"{daemon.state}, {daemon.in_flight} in flight, {daemon.counts}" if daemon else "not attached",
        ledger=app.extensions["lab.ledger"].summary(),
        failures=app.extensions["lab.failures"].current.__dict__,
        concurrency=app.extensions["lab.concurrency"].snapshot(),
    )


@control.route("/failures", methods=["GET", "PUT"])
def failures() -> Response:
    """Show or change the injected failures (PUT a JSON object with the fields to change)."""
    switch: FailureSwitch = current_app.extensions["lab.failures"]
    if request.method == "PUT":
        try:
            switch.update(**(request.get_json(silent=True) or {}))
        except (ConfigError, TypeError) as exc:
            return _bad(str(exc))
    return jsonify(switch.current.__dict__)


@control.route("/requests", methods=["GET", "DELETE"])
def recorded_requests() -> Response:
    """List the last requests exactly as received (?n=20), or forget them."""
    inspector: Inspector = current_app.extensions["lab.inspector"]
    if request.method == "DELETE":
        inspector.clear()
        return jsonify(cleared=True)
    n = request.args.get("n", default=20, type=int)
    return jsonify([item.as_dict() for item in inspector.last(n)])


@control.route("/ledger", methods=["GET", "DELETE"])
def ledger_view() -> Response:
    """Show how often each business id was delivered and applied, or clear the ledger."""
    ledger: Ledger = current_app.extensions["lab.ledger"]
    if request.method == "DELETE":
        ledger.clear()
        return jsonify(cleared=True)
    return jsonify(
        summary=ledger.summary(), applications=ledger.applications(), deliveries=ledger.deliveries()
    )


@control.post("/reset")
def reset() -> Response:
    """Turn failures off and forget the ledger and recorded requests."""
    current_app.extensions["lab.failures"].reset()
    current_app.extensions["lab.ledger"].clear()
    current_app.extensions["lab.inspector"].clear()
    current_app.extensions["lab.concurrency"].reset()
    return jsonify(reset=True)


# -- guards that run before every request ---------------------------------------------------------
class Concurrency:
    """Count requests in progress and the highest count seen (to check HttpConnections)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.now

    def snapshot(self) -> dict[str, int]:
        return {"now": self.now, "peak": self.peak}


def _remote_allowed() -> bool:
    if current_app.config["ALLOW_REMOTE"]:
        return True
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _guard() -> Response | None:
    if not _remote_allowed():
        return _bad("this worker only answers requests from this machine", 403)
    if request.path.startswith("/_lab"):
        return None
    secret = current_app.config["SHARED_SECRET"]
    if secret:
        expected = sign(secret, request.headers.get("X-Aws-Sqsd-Msgid", ""), request.get_data())
        if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
            return _bad(f"missing or wrong {SIGNATURE_HEADER} header", 401)
    current_app.extensions["lab.concurrency"].enter()
    request.environ["lab.counted"] = True
    return _inject_failures()


def _inject_failures() -> Response | None:
    switch: FailureSwitch = current_app.extensions["lab.failures"]
    settings = switch.current
    if settings.crash:
        log.error("worker: crashing on purpose (failure injection)")
        current_app.extensions["lab.crash"]()
        return _bad("worker crashed (failure injection)", 503)
    if settings.hang:
        switch.unhung.wait(HANG_LIMIT_S)
    if settings.latency_ms:
        threading.Event().wait(settings.latency_ms / 1000)
    if switch.roll_error():
        return _bad(f"injected failure {settings.status}", settings.status)
    return None


def _leave(_exc: BaseException | None) -> None:
    if request.environ.pop("lab.counted", False):
        current_app.extensions["lab.concurrency"].leave()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the worker app; config keys: LEDGER_PATH, SHARED_SECRET, ALLOW_REMOTE, WORK_MS, FAILURE_SEED."""
    app = Flask(__name__)
    app.config.update(
        LEDGER_PATH=os.path.join(tempfile.gettempdir(), f"labapp-ledger-{os.getpid()}.sqlite"),
        SHARED_SECRET=None,
        ALLOW_REMOTE=False,
        WORK_MS=0,
        FAILURE_SEED=None,
        INSPECT_KEEP=200,
    )
    app.config.update(config or {})
    app.extensions["lab.ledger"] = Ledger(app.config["LEDGER_PATH"])
    app.extensions["lab.failures"] = FailureSwitch(app.config["FAILURE_SEED"])
    app.extensions["lab.inspector"] = inspector = Inspector(app.config["INSPECT_KEEP"])
    app.extensions["lab.concurrency"] = Concurrency()
    # A worker running as its own process dies for real; HttpServer replaces this with closing the
    # server when the app runs inside a notebook kernel or a test process.
    app.extensions["lab.crash"] = lambda: os._exit(70)
    app.before_request(_guard)
    app.teardown_request(_leave)
    app.register_blueprint(control)
    app.register_blueprint(messages)
    app.wsgi_app = inspector.middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app
