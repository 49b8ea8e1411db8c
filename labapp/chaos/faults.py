"""What the chaos suite breaks: the worker and the daemon as child processes, and a cuttable SQS link.

moto keeps its queues inside the process that serves them, so an outage is made by cutting a TCP
proxy between the daemon and the endpoint rather than by stopping the endpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import requests

from labapp.chaos.profile import ChaosError
from labapp.runtime.ports import free_port
from labapp.runtime.process import ChildProcess
from labapp.settings import HOST, shared_secret
from labapp.signature import control_headers
from labapp.sqsd.options import SqsdOptions

log = logging.getLogger("labapp.chaos")


# -- child processes -----------------------------------------------------------------------------
class WorkerProcess(ChildProcess):
    """`labapp worker` on a fixed loopback port, so a restarted worker gets the same URL."""

    def __init__(self, ledger_path: Path, log_path: Path, port: int | None = None, threads: int = 32) -> None:
        self.port = port or free_port()
        self.ledger_path = ledger_path
        argv = ["worker", "--port", str(self.port), "--ledger", str(ledger_path), "--threads", str(threads)]
        super().__init__("worker", [sys.executable, "-m", "labapp", *argv], log_path)
        self.failures: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 20) -> WorkerProcess:
        """Start, wait until /_lab/health answers, and re-apply the injected failures."""
        super().start()
        self.wait_ready(self.health, timeout, "the worker to answer")
        if self.failures:
            self._put_failures(self.failures)
        return self

    def health(self) -> dict[str, Any] | None:
        """Return the worker's /_lab/health answer, or None when it does not answer."""
        try:
            reply = requests.get(f"{self.url}/_lab/health", timeout=2)
            return dict(reply.json()) if reply.ok else None
        except (requests.RequestException, ValueError):
            return None

    def busy(self) -> int | None:
        """Return how many requests the worker is handling now, or None when it does not answer."""
        health = self.health()
        return None if health is None else int(health["concurrency"]["now"])

    def set_failures(self, **failures: Any) -> None:
        """Inject failures now and after every restart (fields of labapp.failures.Failures)."""
        self.failures.update(failures)
        self._put_failures(self.failures)

    def _put_failures(self, failures: dict[str, Any]) -> None:
        # The child inherits LAB_SHARED_SECRET; with one set, the worker only takes signed control calls.
        path, body = "/_lab/failures", json.dumps(failures).encode()
        headers = {"Content-Type": "application/json", **control_headers(shared_secret(), "PUT", path, body)}
        reply = requests.put(f"{self.url}{path}", data=body, headers=headers, timeout=5)
        if not reply.ok:
            raise ChaosError(f"the worker refused failures {failures}: {reply.text.strip()}")


class DaemonProcess(ChildProcess):
    """`labapp daemon` polling one queue through one endpoint URL.

    It polls `queue_url` through `endpoint_url` (the cuttable proxy) and POSTs to `http_url` with
    `options`, a `wait_time_seconds` long poll, writing to `log_path`.
    """

    def __init__(
        self,
        endpoint_url: str,
        queue_url: str,
        http_url: str,
        options: SqsdOptions,
        log_path: Path,
        wait_time_seconds: int = 1,
    ) -> None:
        argv = ["daemon", "--endpoint-url", endpoint_url, "--queue-url", queue_url, "--http-url", http_url]
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if value is not None and field.name != "WorkerQueueURL":
                argv += ["--option", f"{field.name}={value}"]
        argv += ["--wait-time-seconds", str(wait_time_seconds)]
        super().__init__("daemon", [sys.executable, "-m", "labapp", *argv], log_path)
        self.options = options
        self.wait_time_seconds = wait_time_seconds

    def start(self, timeout: float = 20) -> DaemonProcess:
        """Start and wait until the daemon says it is polling."""
        super().start()
        self.wait_for_output("sqsd: polling", timeout)
        return self

    @property
    def drain_timeout(self) -> float:
        """Longest a SIGTERM may take: the current receive, then the slowest in-flight POST."""
        return self.wait_time_seconds + self.options.ConnectTimeout + self.options.InactivityTimeout + 10


# -- the endpoint cutter -------------------------------------------------------------------------
class TcpProxy:
    """Forward TCP connections from a loopback port to target; cut() makes the target unreachable.

    While cut, the port is closed (connections are refused) and every open connection is reset,
    which is what a client sees when an endpoint goes away; restore() listens on the same port again.
    """

    def __init__(self, target_port: int, target_host: str = HOST, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.connections = 0
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def start(self) -> TcpProxy:
        """Listen (again, on the same port once it is known) and forward every connection."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), name=f"proxy-{self.port}")
        self._acceptor.daemon = True
        self._acceptor.start()
        return self

    restore = start

    def cut(self) -> None:
        """Stop listening and reset every open connection."""
        self._accepting.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # the other side went away or the proxy was cut: close both ends below
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)
