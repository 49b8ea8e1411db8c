"""moto's SQS served on loopback in this process: the lab's embedded endpoint.

moto is pure pip and starts in under a second; the lab carries fixes for the places where it
differs from SQS in ways a lesson would notice (see `_serialise_moto_queues`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from labapp.runtime.servers import Server
from labapp.settings import ENDPOINT_PORT, HOST

log = logging.getLogger("labapp.runtime")


class _QuietHandler(WSGIRequestHandler):
    """moto's server logs a line per request; a learner's notebook should not scroll with them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _serialise_moto_queues() -> None:
    """Make moto's ReceiveMessage and DeleteMessage hold the queue's lock, as SendMessage does.

    moto (5.x) deletes by rebuilding a queue's message list without the lock, so a message sent
    meanwhile vanished; and two receives could both take the same visible message. Real SQS does
    neither. (A long poll still lets others in: waiting on the lock's condition releases it.)
    """
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue.delete_message, "lab_serialised", False):
        return
    original_delete = Queue.delete_message
    original_receive = SQSBackend.receive_message

    def delete_message(self: Queue, receipt_handle: str) -> None:
        with self._messages_lock:
            original_delete(self, receipt_handle)

    def receive_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return original_receive(self, queue_name, *args, **kwargs)

    delete_message.lab_serialised = True  # type: ignore[attr-defined]
    Queue.delete_message = delete_message  # type: ignore[method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


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
        app = DomainDispatcherApplication(create_backend_app)
        _serialise_moto_queues()
        self._refuse_taken_port(
            "stop what uses it (`labapp doctor` shows what) or choose another with --port."
        )
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="sqs-emulator", daemon=True)
        self._thread.start()
        log.info("moto SQS serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
