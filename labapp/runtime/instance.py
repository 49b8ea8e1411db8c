"""One worker instance as EB runs it: the worker app on a loopback server and sqsd posting to it.

`Instance` wires the two together in this process; the lab's stack, the checks, the benchmarks and
the tests all use it. `InstanceProcess` runs one as a child process for the live fleet: its daemon
starts polling only when the controller writes 'start' on stdin, so the moment it enters service is
exact, and it stops on SIGTERM (the daemon drains) or when stdin closes, so it cannot outlive the
controller that started it.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

from flask import Flask

from labapp.runtime.lifecycle import StartStop
from labapp.runtime.process import ChildProcess
from labapp.runtime.servers import CrashMode, HttpServer
from labapp.runtime.wait import stop_on_signals
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.events import Listener
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.sqsd.post import Encoding
from labapp.worker import state as worker_state
from labapp.worker.app import create_app

log = logging.getLogger("labapp.runtime")


class Instance(StartStop):
    """The worker app served on loopback and one daemon posting to it; a context manager.

    `sqs`, `queue_url` and `options` configure the daemon. Pass `app` to serve another WSGI app,
    or `ledger_path` for the kit's worker; `port`, `threads` and `crash` go to its HttpServer;
    `wait_time_seconds`, `encoding` and `secret` to the Daemon. The daemon runs on its own thread
    between `start_daemon()` and `stop_daemon()`, or is driven by hand with `daemon.poll_once()`
    after `start(poll=False)`.
    """

    def __init__(
        self,
        sqs: SqsClient,
        queue_url: str,
        options: SqsdOptions = LAB_PROFILE,
        *,
        app: Any = None,
        ledger_path: Path | str | None = None,
        port: int = 0,
        threads: int | None = None,
        wait_time_seconds: int = 20,
        encoding: Encoding = "sqsd",
        secret: str | None = None,
        crash: CrashMode = "close",
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.options = options
        self.encoding: Encoding = encoding
        self.wait_time_seconds = wait_time_seconds
        self.secret = secret
        if app is None:
            app = create_app({"LEDGER_PATH": str(ledger_path)} if ledger_path else None)
        self.app = app
        self.server = HttpServer(
            app, port=port, threads=threads or max(16, options.HttpConnections), crash=crash
        )
        self.daemon: Daemon | None = None
        #: A proxy's URL in front of the app (nginx on EB): the next daemon POSTs there instead.
        self.front: str | None = None
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def worker(self) -> worker_state.WorkerState:
        """Return the kit's worker state (ledger, failures, inspector, counters)."""
        return worker_state.of(self.app)

    def start(self, poll: bool = True) -> Instance:
        """Serve the app, and start the daemon's loop on a thread unless poll is False."""
        self.server.start()
        if poll:
            self.start_daemon()
        else:
            self.daemon = self._new_daemon()
        return self

    def _new_daemon(self) -> Daemon:
        daemon = Daemon(
            self.sqs,
            self.options,
            queue_url=self.queue_url,
            http_url=self.front or self.server.url,
            encoding=self.encoding,
            wait_time_seconds=self.wait_time_seconds,
            secret=self.secret,
        )
        for listener in self._listeners:
            daemon.subscribe(listener)
        if isinstance(self.app, Flask) and worker_state.EXTENSION in self.app.extensions:
            self.worker.daemon = daemon
        return daemon

    def start_daemon(self, options: SqsdOptions | None = None, encoding: Encoding | None = None) -> Daemon:
        """(Re)start the daemon's loop, optionally with other options or encoding."""
        self.stop_daemon()
        self.options = options or self.options
        self.encoding = encoding or self.encoding
        self.daemon = daemon = self._new_daemon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=daemon.run, args=(self._stop,), name="sqsd")
        self._thread.start()
        return daemon

    def stop_daemon(self) -> None:
        """Stop the daemon the way SIGTERM would: finish in-flight POSTs, release the rest."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.daemon is not None:
            self.daemon.close()
            self.daemon = None

    def subscribe(self, listener: Listener) -> None:
        """Call listener for every daemon event, across daemon restarts."""
        self._listeners.append(listener)
        if self.daemon is not None:
            self.daemon.subscribe(listener)

    def stop(self) -> None:
        """Stop the daemon (draining), then the server, then close the worker's ledger."""
        self.stop_daemon()
        self.server.stop()
        if isinstance(self.app, Flask) and worker_state.EXTENSION in self.app.extensions:
            self.worker.ledger.close()


# -- the live fleet's instances, one process each ----------------------------------------------------
class Handle(Protocol):
    """A booted instance the fleet controls: booted(), enter_service(), terminate(), wait(), kill()."""

    def booted(self) -> bool: ...
    def enter_service(self) -> None: ...
    def terminate(self) -> None: ...
    def wait(self, timeout: float) -> bool: ...
    def kill(self) -> None: ...


class InstanceProcess:
    """An instance process (`labapp instance`) that polls once it reads 'start' on stdin.

    `name` names its log and ready file in `run_dir` (where the shared ledger lives too); it polls
    `queue_url` on `endpoint_url` with HttpConnections `connections`.
    """

    def __init__(self, name: str, run_dir: Path, endpoint_url: str, queue_url: str, connections: int) -> None:
        self.ready_file = run_dir / f"{name}.ready"
        args = ["--endpoint-url", endpoint_url, "--queue-url", queue_url, "--connections", str(connections)]
        args += ["--ledger", str(run_dir / "ledger.sqlite"), "--ready-file", str(self.ready_file)]
        self.child = ChildProcess.labapp(name, ["instance", *args], run_dir / f"{name}.log", stdin_pipe=True)
        self.child.start()

    @property
    def process(self) -> Any:
        return self.child.process

    def booted(self) -> bool:
        """Return True once the instance serves and waits for 'start'."""
        return self.ready_file.exists()

    def enter_service(self) -> None:
        """Tell the instance to start polling."""
        if not self.child.send("start"):  # it exited already; stop() collects it
            log.warning("fleet: instance pid %s is gone", self.child.pid)

    def terminate(self) -> None:
        """Ask the instance to drain and exit."""
        self.child.request_stop()

    def wait(self, timeout: float) -> bool:
        """Wait until the instance exits; return False on timeout."""
        return self.child.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the instance."""
        self.child.kill()


def run_instance(endpoint_url: str, queue_url: str, ledger: str, ready_file: str, connections: int) -> int:
    """Run one fleet instance: the worker app, and a daemon that polls once 'start' arrives on stdin."""
    logging.getLogger("labapp.worker").setLevel(logging.WARNING)  # not a line per message
    stop, go = stop_on_signals(), threading.Event()
    options = LAB_PROFILE.replace(HttpConnections=connections)
    instance = Instance(
        sqs_client(endpoint_url),
        queue_url,
        options,
        ledger_path=ledger,
        threads=connections + 2,
        wait_time_seconds=1,
    )
    instance.start(poll=False)
    try:
        threading.Thread(target=_read_commands, args=(stop, go), daemon=True).start()
        Path(ready_file).write_text(instance.url)
        while not (go.wait(0.1) or stop.is_set()):
            pass
        if not stop.is_set():
            assert instance.daemon is not None
            instance.daemon.run(stop)
            log.info("instance: stopped: %s", instance.daemon.counts)
    finally:
        instance.stop()
    return 0


def _read_commands(stop: threading.Event, go: threading.Event) -> None:
    # End of input means the controller is gone: stop rather than outlive it.
    for line in sys.stdin:
        if line.strip() == "start":
            go.set()
    stop.set()
