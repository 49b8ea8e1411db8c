"""Keep the last N requests exactly as the worker received them: request line, headers, raw body."""

from __future__ import annotations

import base64
import collections
import dataclasses
import io
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import WSGITask

RAW_HEADER_KEY = "lab.raw_header"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclasses.dataclass
class RecordedRequest:
    """One request as it arrived on the socket, and the status the worker answered."""

    at: float
    method: str
    path: str
    request_line: str
    headers: list[tuple[str, str]]
    body: bytes
    remote_addr: str
    status: int | None = None

    def header(self, name: str) -> str | None:
        """Return the first header with this name (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly form (body as text when it is UTF-8, and always as base64)."""
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "request_line": self.request_line,
            "headers": self.headers,
            "body_text": text,
            "body_base64": base64.b64encode(self.body).decode(),
            "remote_addr": self.remote_addr,
            "status": self.status,
        }


def _parse_raw_header(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            # Only HTTP's own blanks: str.strip() would also cut bytes 0x85 and 0xA0, which end
            # UTF-8 characters such as a no-break space once the block is read as Latin-1.
            headers.append((name, value.strip(" \t")))
    return lines[0], headers


def _headers_from_environ(environ: dict[str, Any]) -> list[tuple[str, str]]:
    # Fallback for servers that do not keep the raw header block (e.g. Flask's test client).
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append(("-".join(part.capitalize() for part in key[5:].split("_")), value))
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            headers.append((name, environ[key]))
    return headers


class Inspector:
    """A thread-safe ring buffer of recorded requests with listeners for live views."""

    def __init__(self, keep: int = 200) -> None:
        self._requests: collections.deque[RecordedRequest] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[RecordedRequest], None]] = []

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def finished(self, request: RecordedRequest) -> None:
        for listener in list(self._listeners):
            listener(request)

    def subscribe(self, listener: Callable[[RecordedRequest], None]) -> Callable[[], None]:
        """Call listener after each recorded request is answered; return an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def last(self, n: int | None = None) -> list[RecordedRequest]:
        """Return the most recent n requests, oldest first."""
        with self._lock:
            items = list(self._requests)
        return items if n is None else items[-n:]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def middleware(self, app: WSGIApp, skip_prefix: str = "/_lab") -> WSGIApp:
        """Wrap a WSGI app so every request outside skip_prefix is recorded before the app sees it."""

        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path.startswith(skip_prefix):
                return app(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            raw = environ.get(RAW_HEADER_KEY)
            if raw:
                request_line, headers = _parse_raw_header(raw)
            else:
                query = environ.get("QUERY_STRING")
                target = path + (f"?{query}" if query else "")
                request_line = (
                    f"{environ['REQUEST_METHOD']} {target} {environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}"
                )
                headers = _headers_from_environ(environ)
            recorded = RecordedRequest(
                at=time.time(),
                method=environ["REQUEST_METHOD"],
                path=path,
                request_line=request_line,
                headers=headers,
                body=body,
                remote_addr=environ.get("REMOTE_ADDR", ""),
            )
            self.record(recorded)

            def recording_start_response(status: str, *args: Any) -> Any:
                recorded.status = int(status.split(" ", 1)[0])
                return start_response(status, *args)

            result = app(environ, recording_start_response)
            self.finished(recorded)
            return result

        return wrapped


class _RawHeaderParser(HTTPRequestParser):
    raw_header = b""

    def parse_header(self, header_plus: bytes) -> None:
        self.raw_header = header_plus
        super().parse_header(header_plus)


class _RawHeaderTask(WSGITask):
    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[RAW_HEADER_KEY] = getattr(self.request, "raw_header", b"")
        return environ


class RawHeaderChannel(HTTPChannel):
    """A waitress channel that hands the header block, byte for byte, to the WSGI app."""

    parser_class = _RawHeaderParser
    task_class = _RawHeaderTask
