"""moto's SQS served on loopback in this process: the lab's embedded endpoint.

moto is pure pip and starts in under a second. The lab carries fixes for the places where it
differs from SQS in ways a lesson would notice (runtime/moto_fixes.py: cost linear in queue
depth, receives and deletes serialised), and one route of its own: `GET /_lab/sqs/messages?
QueueUrl=...` lists a queue's messages without receiving them, as LocalStack's developer
endpoint does, so a peek does not raise any receive count.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from labapp.runtime.moto_fixes import install as install_moto_fixes
from labapp.runtime.servers import Server
from labapp.settings import ENDPOINT_PORT, HOST

log = logging.getLogger("labapp.runtime")


class _QuietHandler(WSGIRequestHandler):
    """moto's server logs a line per request; a learner's notebook should not scroll with them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


#: The lab's own route on the embedded endpoint: a queue's messages, looked at without receiving.
LOOK_PATH = "/_lab/sqs/messages"


def _state_of(message: Any, now: float) -> str:
    # moto's rules: visible once now > visible_at, delayed while now < delayed_until.
    if now < message.delayed_until:
        return "delayed"
    return "visible" if now > message.visible_at else "in flight"


def _attribute_json(value: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in value.items() if k != "BinaryValue"}
    if "BinaryValue" in value:
        shown["BinaryValue"] = base64.b64encode(bytes(value["BinaryValue"])).decode("ascii")
    return shown


def look(queue_url: str) -> dict[str, Any] | None:
    """Return a queue's messages as JSON-ready data, touching none of them; None if no such queue.

    Each message has what ReceiveMessage would show (body, MD5, system attributes, message
    attributes with Binary values in base64) plus its state; the receive count does not change.
    """
    from moto.sqs.models import sqs_backends, unix_time_millis

    parts = urlparse(queue_url).path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in sqs_backends:
        return None
    account, name = parts
    queue = next(
        (backend.queues[name] for backend in sqs_backends[account].values() if name in backend.queues), None
    )
    if queue is None:
        return None
    with queue._messages_lock:
        messages, now = list(queue._messages), unix_time_millis()
    listed = []
    for message in messages:
        attributes = {
            "SenderId": message.sender_id,
            "SentTimestamp": str(message.sent_timestamp),
            "ApproximateReceiveCount": str(message.approximate_receive_count),
        }
        if message.approximate_first_receive_timestamp:
            attributes["ApproximateFirstReceiveTimestamp"] = str(message.approximate_first_receive_timestamp)
        entry: dict[str, Any] = {
            "MessageId": message.id,
            "Body": message.body,
            "MD5OfBody": message.body_md5,
            "Attributes": attributes,
            "State": _state_of(message, now),
        }
        if message.message_attributes:
            entry["MessageAttributes"] = {
                key: _attribute_json(value) for key, value in message.message_attributes.items()
            }
        listed.append(entry)
    return {"QueueUrl": queue_url, "Messages": listed}


class _LabRoutes:
    """moto's WSGI app, with the lab's look route in front of it."""

    def __init__(self, moto_app: Any) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != LOOK_PATH or environ.get("REQUEST_METHOD") != "GET":
            return self.moto_app(environ, start_response)
        queue_url = parse_qs(environ.get("QUERY_STRING", "")).get("QueueUrl", [""])[0]
        found = look(queue_url)
        if found is None:
            status = "404 Not Found"
            found = {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "QueueUrl": queue_url}}
        else:
            status = "200 OK"
        body = json.dumps(found).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class Emulator(Server):
    """moto's SQS served on a background thread; use it as a context manager."""

    def __init__(self, port: int = ENDPOINT_PORT, host: str = HOST) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        """Bind the port (failing at once if it is taken) and serve on a daemon thread."""
        # Imported here: moto costs ~0.5 s to import and the CLI often does not need it.
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        # moto raises NotImplementedError for StartMessageMoveTask and werkzeug would print the
        # whole traceback; the kit handles that case itself (sqs.queues.redrive).
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        app = _LabRoutes(DomainDispatcherApplication(create_backend_app))
        install_moto_fixes()
        self._refuse_taken_port(
            "stop what uses it (`labapp doctor` shows what) or choose another with --port."
        )
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="sqs-emulator", daemon=True)
        self._thread.start()
        log.info("moto SQS serving at %s", self.url)
        return self

    @property
    def alive(self) -> bool:
        """True while the serving thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
