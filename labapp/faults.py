"""What the chaos suite breaks: the worker and the daemon as child processes, and a cuttable SQS link.

moto keeps its queues inside the process that serves them, so an outage is made by cutting a TCP
proxy between the daemon and the endpoint rather than by stopping the endpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import requests

from labapp.chaos_common import ChaosError, wait_until
from labapp.config import SqsdOptions
from labapp.emulator import HOST, free_port

log = logging.getLogger("labapp.chaos")


# -- child processes -----------------------------------------------------------------------------
class Child:
    """One `python -m labapp ...` child process with its output appended to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "labapp", *argv]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    def start(self) -> Child:
        """Start the process (again); raise if it is still running."""
        if self.alive:
            raise ChaosError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- kept open for the child's lifetime
        self._log_offset = self._log.tell()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        """True while the process runs (this also reaps it once it has exited)."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def output(self, since_start: bool = True) -> str:
        """Return what the process wrote (since its last start, or in all its runs)."""
        with open(self.log_path, "rb") as file:
            file.seek(self._log_offset if since_start else 0)
            return file.read().decode("utf-8", errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Wait until the process, since its last start, printed text; fail if it exits first."""

        def printed() -> bool:
            if not self.alive:
                tail = self.output()[-600:]
                raise ChaosError(f"{self.name} exited with {self.returncode} while starting: {tail}")
            return text in self.output()

        wait_until(printed, timeout, f"{self.name} to print {text!r}", interval=0.05)

    def kill(self) -> int | None:
        """SIGKILL the process and reap it; return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(timeout=10)
        self._close_log()
        return code

    def terminate(self, timeout: float) -> int:
        """SIGTERM the process and wait for it; SIGKILL it and raise if it does not exit in time."""
        if self.process is None:
            raise ChaosError(f"{self.name} was never started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ChaosError(f"{self.name} did not exit within {timeout:.0f}s of SIGTERM") from None
        self._close_log()
        return code

    def stop(self, timeout: float = 10) -> None:
        """End the process whatever its state: SIGTERM, then SIGKILL; always reap it."""
        if self.alive:
            with contextlib.suppress(ChaosError):
                self.terminate(timeout)
        self.kill()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class WorkerProcess(Child):
    """`labapp worker` on a fixed loopback port, so a restarted worker gets the same URL."""

    def __init__(self, ledger_path: Path, log_path: Path, port: int | None = None, threads: int = 32) -> None:
        self.port = port or free_port()
        self.ledger_path = ledger_path
        argv = ["worker", "--port", str(self.port), "--ledger", str(ledger_path), "--threads", str(threads)]
        super().__init__("worker", argv, log_path)
        self.failures: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 20) -> WorkerProcess:
        """Start, wait until /_lab/health answers, and re-apply the injected failures."""
        super().start()
        wait_until(self._answers, timeout, "the worker to answer")
        if self.failures:
            self._put_failures(self.failures)
        return self

    def _answers(self) -> bool:
        if not self.alive:
            raise ChaosError(f"worker exited with {self.returncode} while starting: {self.output()[-600:]}")
        return self.health() is not None

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
        reply = requests.put(f"{self.url}/_lab/failures", json=failures, timeout=5)
        if not reply.ok:
            raise ChaosError(f"the worker refused failures {failures}: {reply.text.strip()}")


class DaemonProcess(Child):
    """`labapp daemon` polling one queue through one endpoint URL."""

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
        super().__init__("daemon", argv, log_path)
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
