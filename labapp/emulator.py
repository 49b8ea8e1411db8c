"""The SQS endpoint: find LocalStack if it runs, otherwise serve moto's SQS on loopback."""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from labapp.errors import PortInUseError

DEFAULT_PORT = 4566
HOST = "127.0.0.1"

log = logging.getLogger("labapp.emulator")


class _QuietHandler(WSGIRequestHandler):
    """moto's server logs a line per request; a learner's notebook should not scroll with them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def free_port(host: str = HOST) -> int:
    """Return a TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """Return True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) != 0


def identify(endpoint_url: str, timeout: float = 0.5) -> str | None:
    """Return 'localstack', 'moto' or None for whatever answers at endpoint_url."""
    try:
        health = requests.get(f"{endpoint_url}/_localstack/health", timeout=timeout)
        if health.ok and "services" in health.text:
            return "localstack"
        # /moto-api/config is a few bytes; /moto-api/data.json dumps every queue and message and
        # grows slow enough, after a busy session, to miss the timeout.
        moto = requests.get(f"{endpoint_url}/moto-api/config", timeout=timeout)
        if moto.ok and moto.headers.get("Content-Type", "").startswith("application/json"):
            return "moto"
    except requests.RequestException:
        return None
    return None


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


class Emulator:
    """moto's SQS served on a background thread; use it as a context manager."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = HOST) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Emulator:
        """Bind the port (failing at once if it is taken) and serve on a daemon thread."""
        # Imported here: moto costs ~0.5 s to import and the CLI often does not need it.
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        # moto raises NotImplementedError for StartMessageMoveTask and werkzeug would print the
        # whole traceback; the kit handles that case itself (queues.redrive).
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        app = DomainDispatcherApplication(create_backend_app)
        _serialise_moto_queues()
        # werkzeug reports a taken port by printing and calling sys.exit, so look before binding.
        if self.port and not port_is_free(self.port, self.host):
            raise PortInUseError(
                f"Port {self.port} on {self.host} is taken; stop what uses it (`labapp doctor` shows what) "
                "or choose another with --port."
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

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
