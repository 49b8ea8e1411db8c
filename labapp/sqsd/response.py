"""Read one HTTP/1.1 response off a socket: the status, the start of the body, and whether to keep the socket.

The daemon needs no more than that. http.client parses every header through the email package,
which costs more per POST than the rest of the daemon's HTTP work; here a response costs a split.
Bodies are read to their end (Content-Length, chunked, or until the app closes) so that a kept
socket is ready for the next request; only the first `keep` bytes are kept.
"""

from __future__ import annotations

import dataclasses
import socket

MAX_HEAD_BYTES = 65_536
_RECV = 65_536


class NoResponse(ConnectionError):
    """The app closed the connection before sending any byte of a response."""


class BadResponse(ValueError):
    """What the app sent is not an HTTP/1.x response, or it ended half way."""


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """The parts of an answer the daemon uses."""

    status: int
    body: bytes
    keep_alive: bool


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False

    def fill(self) -> bool:
        chunk = self.sock.recv(_RECV)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def line(self, limit: int = MAX_HEAD_BYTES) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > limit or not self.fill():
                raise BadResponse("the response ended inside a line")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def exactly(self, count: int, keep: int) -> bytes:
        """Consume `count` bytes; return the first `keep` of them."""
        kept = bytearray()
        while count > 0:
            if not self.buffer and not self.fill():
                raise BadResponse("the response ended before its body did")
            take = min(count, len(self.buffer))
            if len(kept) < keep:
                kept += self.buffer[: min(take, keep - len(kept))]
            del self.buffer[:take]
            count -= take
        return bytes(kept)


def read_response(sock: socket.socket, keep: int = 200) -> Response:
    """Read one response (skipping 1xx interim ones); raise NoResponse, BadResponse or an OSError."""
    reader = _Reader(sock)
    while True:
        if not reader.buffer and not reader.fill():
            raise NoResponse("closed by the app before any response")
        version, status, head = _head(reader)
        if status == 101 or not 100 <= status < 200:
            break
    keep_alive = version == "HTTP/1.1"
    length: int | None = None
    chunked = False
    for name, _, value in (line.partition(":") for line in head):
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            if not value.isdigit():
                raise BadResponse(f"Content-Length {value!r} is not a number")
            length = int(value)
        elif name == "transfer-encoding":
            chunked = value.endswith("chunked")
        elif name == "connection":
            keep_alive = "close" not in value if keep_alive else "keep-alive" in value
    if status in (204, 304):
        body = b""
    elif chunked:
        body = _chunked(reader, keep)
    elif length is not None:
        body = reader.exactly(length, keep)
    else:  # the body ends when the app closes the connection
        while reader.fill():
            if len(reader.buffer) > keep:
                del reader.buffer[keep:]
        body, keep_alive = bytes(reader.buffer), False
        reader.buffer.clear()
    if reader.buffer:  # bytes nobody asked for: the socket cannot carry another request
        keep_alive = False
    return Response(status, body, keep_alive)


def _head(reader: _Reader) -> tuple[str, int, list[str]]:
    status_line = reader.line().decode("latin-1")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise BadResponse(f"not an HTTP response: {status_line[:80]!r}")
    head: list[str] = []
    size = len(status_line)
    while line := reader.line():
        size += len(line)
        if size > MAX_HEAD_BYTES:
            raise BadResponse("the response's headers are too long")
        head.append(line.decode("latin-1"))
    return version, int(code), head


def _chunked(reader: _Reader, keep: int) -> bytes:
    kept = bytearray()
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadResponse(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while reader.line():  # trailers, up to the blank line
                pass
            return bytes(kept)
        kept += reader.exactly(size, max(0, keep - len(kept)))
        if reader.line():
            raise BadResponse("a chunk did not end with CRLF")
