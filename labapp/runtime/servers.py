"""Servers on a background thread of this process: the shared shape, and waitress for the worker app.

Like Werkzeug's test server and moto's ThreadedMotoServer, a server binds when it starts (failing
at once on a taken port), serves on a daemon thread, exposes its URL, and stops by joining.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from waitress.server import create_server

from labapp.errors import PortInUseError
from labapp.runtime.lifecycle import StartStop
from labapp.runtime.ports import port_is_free
from labapp.settings import HOST
from labapp.worker import state as worker_state
from labapp.worker.inspector import RawHeaderChannel
from labapp.worker.limits import MAX_BODY_BYTES

log = logging.getLogger("labapp.runtime")

CrashMode = Literal["close", "exit"]


class Server(StartStop):
    """Something serving on host:port until stop(); a context manager."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _refuse_taken_port(self, advice: str) -> None:
        # Look before binding: werkzeug reports a taken port by printing and calling sys.exit, and
        # moto's ThreadedMotoServer hangs forever on one.
        if self.port and not port_is_free(self.port, self.host):
            raise PortInUseError(f"Port {self.port} on {self.host} is taken; {advice}")


class HttpServer(Server):
    """A production WSGI server (waitress) for the worker app; a context manager.

    The worker's injected crash kills its process, which is right for `labapp worker` (pass
    crash="exit") but would kill a notebook kernel or pytest. With crash="close" (the default) a
    crash drops every connection and stops listening instead, so later connections are refused,
    which is what the daemon sees when a real worker process dies.

    `app` is any WSGI app; `port` 0 takes a free one on `host`; `threads` is waitress's worker
    threads (at least HttpConnections, or POSTs queue inside the server unseen); `crash` as above.
    """

    def __init__(
        self, app: Any, port: int = 0, host: str = HOST, threads: int = 16, crash: CrashMode = "close"
    ) -> None:
        if crash not in ("close", "exit"):
            raise ValueError(f"crash must be 'close' or 'exit'; got {crash!r}")
        self.app = app
        self.host = host
        self.port = port
        self.threads = threads
        self.crash_mode = crash
        self.crashed = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._closer: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None

    def start(self) -> HttpServer:
        """Bind and serve on a daemon thread."""
        self._refuse_taken_port("choose another port for the worker.")
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" chatter
        if self.crash_mode == "close" and self._worker_state() is not None:
            self._worker_state().crash = self.crash  # type: ignore[union-attr]
        self.crashed.clear()
        server = create_server(
            self.app,
            host=self.host,
            port=self.port,
            threads=self.threads,
            ident="worker-tier-lab",
            # waitress refuses a body of max_request_body_size bytes or more, and its default is
            # 1 GiB: +1 lets the largest SQS message through and nothing bigger reach the app.
            max_request_body_size=MAX_BODY_BYTES + 1,
        )
        server.channel_class = RawHeaderChannel
        self.port = int(server.effective_port)  # waitress reports it as text
        self._thread = threading.Thread(target=server.run, name=f"http-{self.port}", daemon=True)
        self._server = server
        self._thread.start()
        return self

    def crash(self) -> None:
        """Die like a crashed process: drop every connection and stop listening, without a reply."""
        log.error("worker %s: crashed (failure injection); connections now refused", self.url)
        # Held throughout, so that a stop() arriving meanwhile finds the closing thread started.
        with self._lock:
            server, self._server = self._server, None
            self.crashed.set()
            if server is None:
                return
            # Called from a request thread: once the sockets are closed the crashing request can
            # no longer be answered.
            self._close_in_loop(server)
            # The threads are joined elsewhere, because this thread is one of them.
            self._closer = threading.Thread(
                target=self._finish, args=(server, self._thread), name=f"http-{self.port}-crash", daemon=True
            )
            self._closer.start()

    def stop(self) -> None:
        """Close every connection, stop the loop and join the threads."""
        with self._lock:
            server, self._server = self._server, None
            closer, self._closer = self._closer, None
        if server is not None:
            # A hanging request would hold a thread for an hour; stopping releases it.
            current = self._worker_state()
            if current is not None:
                current.failures.unhung.set()
            self._close_in_loop(server)
            self._finish(server, self._thread)
        if closer is not None and closer is not threading.current_thread():
            closer.join(timeout=10)
        self._thread = None

    def _close_in_loop(self, server: Any) -> None:
        # Sockets are closed inside waitress's loop thread: closing them under its running select()
        # kills the loop with EBADF, and closing from the loop also ends it without waiting out a poll.
        closed = threading.Event()

        def close_all() -> None:
            _close_sockets(server)
            closed.set()

        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                server.trigger.pull_trigger(close_all)
            except OSError as exc:
                log.debug("worker %s: trigger already closed (%s)", self.url, exc)
            else:
                closed.wait(timeout=3)
        if not closed.is_set():
            _close_sockets(server)

    @staticmethod
    def _finish(server: Any, thread: threading.Thread | None) -> None:
        server.task_dispatcher.shutdown(timeout=5)
        if thread is not None:
            thread.join(timeout=5)

    def _worker_state(self) -> worker_state.WorkerState | None:
        # Any WSGI app can be served; only the lab's worker has state to wire up.
        if worker_state.EXTENSION in getattr(self.app, "extensions", {}):
            return worker_state.of(self.app)
        return None


def _close_sockets(server: Any) -> None:
    # Closing each channel (and the listening socket) empties waitress's socket map, which ends
    # its loop; the "closed while serving" noise that follows is expected.
    logging.getLogger("waitress").setLevel(logging.CRITICAL)
    while server._map:
        for channel in list(server._map.values()):
            channel.handle_close()
