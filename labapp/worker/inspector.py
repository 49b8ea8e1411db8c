"""Keep the last requests exactly as the worker received them: request line, headers, raw body.

The middleware reads each request before the app sees it, but the app decides what is kept
(`Inspector.admit`): a control call is not, every other request is, whatever its path.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask, WSGITask

from labapp.worker.limits import BODY_TOO_LARGE, MAX_BODY_BYTES, QUOTE_CHARS

RAW_HEADER_KEY = "lab.raw_header"
_PENDING_KEY = "lab.recorded"
_ADMITTED_KEY = "lab.admitted"
#: How many requests the inspector keeps at most.
INSPECT_KEEP = 200
#: How many bytes of requests (bodies, header blocks) it keeps at most; the oldest go first.
INSPECT_MAX_BYTES = 8 * 1024 * 1024

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


def _size(request: RecordedRequest) -> int:
    return len(request.body) + len(request.request_line) + sum(len(k) + len(v) for k, v in request.headers)


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if not 0 < length <= MAX_BODY_BYTES:
        # Nothing to read, or more than the worker accepts: the guard answers 413 unread.
        return b""
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


class Inspector:
    """A thread-safe ring buffer of recorded requests, bounded by count and bytes, with listeners.

    `keep` is the most requests kept and `max_bytes` the most bytes of them; the oldest go first,
    but the newest request is always kept (a body is at most MAX_BODY_BYTES).
    """

    def __init__(self, keep: int = INSPECT_KEEP, max_bytes: int = INSPECT_MAX_BYTES) -> None:
        self.keep = keep
        self.max_bytes = max_bytes
        self._requests: collections.deque[RecordedRequest] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[RecordedRequest], None]] = []

    @property
    def bytes_kept(self) -> int:
        """Return how many bytes the kept requests take."""
        return self._bytes

    def record(self, request: RecordedRequest) -> None:
        """Keep one request, forgetting the oldest beyond `keep` requests or `max_bytes`."""
        with self._lock:
            self._requests.append(request)
            self._bytes += _size(request)
            while len(self._requests) > max(self.keep, 1) or (
                self._bytes > self.max_bytes and len(self._requests) > 1
            ):
                self._bytes -= _size(self._requests.popleft())

    def admit(self, environ: dict[str, Any]) -> None:
        """Record the request the middleware read into this environ (once; the app calls this)."""
        recorded = environ.get(_PENDING_KEY)
        if recorded is not None and not environ.get(_ADMITTED_KEY):
            environ[_ADMITTED_KEY] = True
            self.record(recorded)

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
        if n is None:
            return items
        return items[-n:] if n > 0 else []

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._bytes = 0

    def middleware(self, app: WSGIApp) -> WSGIApp:
        """Wrap a WSGI app so each request is read before the app sees it, for the app to `admit`."""

        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            body = _read_body(environ)
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
            environ[_PENDING_KEY] = recorded

            def recording_start_response(status: str, *args: Any) -> Any:
                recorded.status = int(status.split(" ", 1)[0])
                return start_response(status, *args)

            result = app(environ, recording_start_response)
            if environ.get(_ADMITTED_KEY):
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


class _JsonErrorTask(ErrorTask):
    # waitress answers a request it refuses (a body over max_request_body_size, a malformed
    # header) in plain text; the worker's clients read a JSON reason from every 4xx.
    def execute(self) -> None:
        error = self.request.error
        # waitress's own texts are short, but some quote what the client sent.
        reason = BODY_TOO_LARGE if error.code == 413 else f"{error.reason}: {error.body}"[: QUOTE_CHARS * 3]
        body = json.dumps({"error": reason}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class RawHeaderChannel(HTTPChannel):
    """A waitress channel that hands the header block, byte for byte, to the WSGI app."""

    parser_class = _RawHeaderParser
    task_class = _RawHeaderTask
    error_task_class = _JsonErrorTask
