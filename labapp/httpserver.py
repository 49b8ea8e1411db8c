"""Serve a WSGI app with waitress on a background thread, bound to loopback."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from waitress.server import create_server

from labapp.emulator import HOST, port_is_free
from labapp.errors import PortInUseError
from labapp.inspector import RawHeaderChannel

log = logging.getLogger("labapp.httpserver")


class HttpServer:
    """A production WSGI server (waitress) for the worker app; a context manager."""

    def __init__(self, app: Any, port: int = 0, host: str = HOST, threads: int = 16) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.threads = threads
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        """Bind and serve on a daemon thread."""
        if self.port and not port_is_free(self.port, self.host):
            raise PortInUseError(
                f"Port {self.port} on {self.host} is taken; choose another port for the worker."
            )
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" chatter
        self._server = create_server(
            self.app, host=self.host, port=self.port, threads=self.threads, ident="worker-tier-lab"
        )
        self._server.channel_class = RawHeaderChannel
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, name=f"http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the threads."""
        server, self._server = self._server, None
        if server is None:
            return
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
        # Closing each channel empties waitress's socket map, which ends its loop.
        while server._map:
            for channel in list(server._map.values()):
                channel.handle_close()
        server.task_dispatcher.shutdown(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
