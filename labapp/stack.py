"""Find or start the pieces of a running lab: endpoint, queues, worker and daemon."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labapp.config import LAB_PROFILE, SqsdOptions
from labapp.daemon import Daemon, DaemonEvent
from labapp.emulator import DEFAULT_PORT, HOST, Emulator, identify, port_is_free
from labapp.errors import EndpointError, LabError, NotRunningError
from labapp.httpserver import HttpServer
from labapp.localstack import LocalStack
from labapp.post import Encoding
from labapp.queues import QueuePair, ensure_queues, sqs_client
from labapp.worker import create_app

log = logging.getLogger("labapp.stack")

ENDPOINT_ENV = "LAB_ENDPOINT_URL"
WORKER_QUEUE = "lab-worker-queue"
WORKER_PORT = 8000


def lab_home() -> Path:
    """Return the folder for the lab's state, ledgers and logs (LAB_HOME, or ~/.worker-tier-lab)."""
    home = Path(os.environ.get("LAB_HOME") or Path.home() / ".worker-tier-lab")
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_endpoint_url() -> str:
    return os.environ.get(ENDPOINT_ENV) or f"http://{HOST}:{DEFAULT_PORT}"


@dataclasses.dataclass
class Endpoint:
    """An SQS endpoint the lab uses, and the emulator behind it if this process started one."""

    url: str
    backend: str  # "moto", "localstack" or "aws"
    emulator: Emulator | LocalStack | None = None

    def stop(self) -> None:
        """Stop the emulator if this process owns it."""
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None


def find_or_start_endpoint(url: str | None = None, start: bool = True, backend: str = "moto") -> Endpoint:
    """Use whatever answers at url (LocalStack or a lab's moto); otherwise start `backend` there."""
    url = url or default_endpoint_url()
    found = identify(url)
    if found is not None:
        return Endpoint(url, found)
    if not start:
        raise NotRunningError(f"Nothing answers at {url}; start the lab with `labapp up`.")
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.hostname not in (HOST, "localhost"):
        raise EndpointError(f"Nothing answers at {url}, and the lab only starts an emulator on {HOST}.")
    port = parsed.port or DEFAULT_PORT
    if not port_is_free(port):
        raise EndpointError(
            f"Port {port} is taken by something that is not an SQS endpoint; run `labapp doctor` to see what."
        )
    if backend == "localstack":
        localstack = LocalStack(port=port).start()
        return Endpoint(localstack.url, "localstack", localstack)
    emulator = Emulator(port=port).start()
    return Endpoint(emulator.url, "moto", emulator)


def state_file() -> Path:
    return lab_home() / "stack.json"


def read_state() -> dict[str, Any] | None:
    """Return the running stack's state, or None when no stack process is alive."""
    path = state_file()
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not _alive(int(state.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Stack:
    """Endpoint, EB-style queues, the worker app and one daemon, all in this process."""

    queues: QueuePair  # set by start()

    def __init__(
        self,
        options: SqsdOptions = LAB_PROFILE,
        *,
        endpoint_url: str | None = None,
        queue_name: str = WORKER_QUEUE,
        worker_port: int = WORKER_PORT,
        ledger_path: Path | None = None,
        wait_time_seconds: int = 2,
        backend: str = "moto",
        encoding: Encoding = "sqsd",
    ) -> None:
        self.options = options
        self.encoding: Encoding = encoding
        self.endpoint_url = endpoint_url
        self.queue_name = queue_name
        self.worker_port = worker_port
        self.ledger_path = ledger_path or lab_home() / f"{queue_name}-ledger.sqlite"
        self.wait_time_seconds = wait_time_seconds
        self.backend = backend
        self.endpoint: Endpoint | None = None
        self.worker: HttpServer | None = None
        self.daemon: Daemon | None = None
        self.events: list[DaemonEvent] = []
        self._listeners: list[Callable[[DaemonEvent], None]] = []
        self._stop_daemon = threading.Event()
        self._daemon_thread: threading.Thread | None = None

    def start(self) -> Stack:
        """Start every part, stopping whatever already started if a later part fails."""
        try:
            self.endpoint = find_or_start_endpoint(self.endpoint_url, backend=self.backend)
            self.sqs = sqs_client(self.endpoint.url)
            self.queues = ensure_queues(
                self.sqs, self.queue_name, self.options.MaxRetries, self.options.VisibilityTimeout
            )
            self.prepare()
            app = create_app({"LEDGER_PATH": str(self.ledger_path)})
            self.worker = HttpServer(
                app, port=self.worker_port, threads=max(16, self.options.HttpConnections)
            ).start()
            self.start_daemon()
        except BaseException:
            self.stop()
            raise
        return self

    def prepare(self) -> None:
        """Hook between making the queues and starting the worker (a notebook empties them here)."""

    def start_daemon(self, options: SqsdOptions | None = None, encoding: Encoding | None = None) -> Daemon:
        """(Re)start the daemon, optionally with other sqsd options or the article-form encoding."""
        self.stop_daemon()
        self.options = options or self.options
        self.encoding = encoding or self.encoding
        assert self.worker is not None, "start() the stack first"
        self.daemon = Daemon(
            self.sqs,
            self.options,
            queue_url=self.queues.url,
            http_url=self.worker.url,
            encoding=self.encoding,
            wait_time_seconds=self.wait_time_seconds,
        )
        self.daemon.subscribe(self.events.append)
        for listener in self._listeners:
            self.daemon.subscribe(listener)
        self.worker.app.extensions["lab.daemon"] = self.daemon
        self._stop_daemon = threading.Event()
        self._daemon_thread = threading.Thread(target=self.daemon.run, args=(self._stop_daemon,), name="sqsd")
        self._daemon_thread.start()
        return self.daemon

    def stop_daemon(self) -> None:
        """Stop the daemon the way SIGTERM would: finish in-flight POSTs, release the rest."""
        self._stop_daemon.set()
        if self._daemon_thread is not None:
            self._daemon_thread.join()
            self._daemon_thread = None
        if self.daemon is not None:
            self.daemon.close()
            self.daemon = None

    def subscribe(self, listener: Callable[[DaemonEvent], None]) -> None:
        """Call listener for every daemon event, across daemon restarts."""
        self._listeners.append(listener)
        if self.daemon is not None:
            self.daemon.subscribe(listener)

    def stop(self) -> None:
        """Stop the daemon (draining), then the worker, then the endpoint if this process owns it."""
        self.stop_daemon()
        if self.worker is not None:
            self.worker.stop()
            self.worker.app.extensions["lab.ledger"].close()
            self.worker = None
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None

    def describe(self) -> dict[str, Any]:
        """Return what a client needs to find this stack."""
        assert self.endpoint and self.worker
        return {
            "pid": os.getpid(),
            "endpoint_url": self.endpoint.url,
            "backend": self.endpoint.backend,
            "owns_endpoint": self.endpoint.emulator is not None,
            "queue": self.queues.name,
            "queue_url": self.queues.url,
            "dlq_url": self.queues.dlq_url,
            "worker_url": self.worker.url,
            "ledger": str(self.ledger_path),
            "started_at": time.time(),
        }


def serve_forever(stack: Stack) -> int:
    """Run a stack in the foreground until SIGTERM or Ctrl-C; write its state file while it runs."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stack.start()
    # Written whole, then renamed, so `labapp up` never reads half a file.
    partial = state_file().with_suffix(".tmp")
    partial.write_text(json.dumps(stack.describe(), indent=2))
    os.replace(partial, state_file())
    try:
        stop.wait()
    finally:
        state_file().unlink(missing_ok=True)
        stack.stop()
    return 0


def spawn(args: list[str], timeout: float = 20) -> dict[str, Any]:
    """Start `labapp serve` detached, wait until its state file appears, and return the state."""
    if read_state() is not None:
        raise LabError("The lab is already running; `labapp status` shows it, `labapp down` stops it.")
    log_path = lab_home() / "stack.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "labapp", "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state()
        if state is not None and state.get("pid") == process.pid:
            return state
        if process.poll() is not None:
            last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise LabError(f"The lab stopped while starting: {last[0]} (full log: {log_path}).")
        time.sleep(0.05)
    process.terminate()
    raise LabError(f"The lab did not become ready in {timeout:.0f}s; see {log_path}.")


def terminate(timeout: float = 60) -> bool:
    """Stop the running stack with SIGTERM; return False when none was running."""
    state = read_state()
    if state is None:
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
        _reap(pid)
    if _alive(pid):
        raise LabError(f"The lab (pid {pid}) did not stop within {timeout:.0f}s; stop it with `kill {pid}`.")
    state_file().unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    # When this process spawned the stack itself (tests), collect the zombie so it counts as gone.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
