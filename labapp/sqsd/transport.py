"""The POST on the wire: a keep-alive pool of sockets to the app, each request written in one piece.

sqsd's HTTP client (em-http) sends the message's headers, then Host and Content-Length, and
nothing else: no Accept, no Accept-Encoding, no Connection on a keep-alive request. Writing the
request by hand keeps it that way (a general HTTP library adds its own headers) and costs one
formatting pass per message. A request that outlives InactivityTimeout has its socket shut, so
the app sees the disconnect as it would behind a proxy, and no socket is ever reused after a
failure.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import functools
import logging
import re
import select
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from labapp.errors import ConfigError
from labapp.sqsd.post import Post
from labapp.sqsd.response import BadResponse, NoResponse, read_response

DETAIL_BYTES = 200  # how much of the app's answer an event keeps
_BREAKS = re.compile(r"[\r\n\x00]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Failure(str, enum.Enum):
    """Why a POST got no status; each reply's detail starts with the errno sqsd would log."""

    REFUSED = "refused"
    UNRESOLVED = "unresolved"
    CONNECT_TIMEOUT = "connect-timeout"
    INACTIVITY = "inactivity"
    RESET = "reset"
    CLOSED = "closed"
    BAD_REQUEST = "bad-request"
    BAD_RESPONSE = "bad-response"


_UNREACHABLE = (Failure.REFUSED, Failure.UNRESOLVED)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """What one POST came to: a status and the start of the body, or a failure and why."""

    status: int | None
    body: bytes
    failure: Failure | None
    detail: str
    elapsed: float

    def text(self) -> str:
        """The app's answer (its first bytes), or why there was none, for events and logs."""
        if self.failure is not None:
            return self.detail
        return self.body.decode("utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the app listens: scheme, host and port from http_url, and any base path before each POST's path."""

    scheme: str
    host: str
    port: int
    base_path: str
    host_header: str

    @classmethod
    def parse(cls, http_url: str) -> Target:
        """Read http_url (e.g. http://127.0.0.1:80); raise ConfigError for anything but a plain HTTP URL."""
        parts = urlsplit(http_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(
                f"http_url must be an http:// URL with a host, e.g. http://127.0.0.1:80; got {http_url!r}."
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigError(f"http_url must not carry a user, a query or a fragment; got {http_url!r}.")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"http_url has an invalid port: {http_url!r}.") from exc
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        # Like em-http's Host header: the port only when it is not the scheme's own.
        host_header = host if port == _DEFAULT_PORTS[parts.scheme] else f"{host}:{port}"
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), host_header)

    def target(self, path: str) -> str:
        """The request target for an already validated path (options.path_problem)."""
        return self.base_path + path

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a Target lives as long as its daemon
    def url(self, path: str) -> str:
        """The full URL of a POST to `path`, for logs and events."""
        return urlunsplit((self.scheme, self.host_header, self.target(path), "", ""))


class Pool:
    """At most `size` keep-alive sockets to one app; `post` sends one request and reads its answer.

    `target` is where the app listens; `size` is HttpConnections; `connect_timeout` and
    `inactivity_timeout` are ConnectTimeout and InactivityTimeout in seconds; `log` gets one
    warning when a run of refused connections starts and one line when the app answers again.
    The caller keeps no more than `size` POSTs running at once (the daemon's slots), so the pool
    never waits.
    """

    def __init__(
        self,
        target: Target,
        size: int,
        connect_timeout: float,
        inactivity_timeout: float,
        log: logging.Logger,
    ) -> None:
        self.target = target
        self.size = size
        self.connect_timeout = connect_timeout
        self.inactivity_timeout = inactivity_timeout
        self.log = log
        self.unreachable = False
        self._idle: collections.deque[socket.socket] = collections.deque()
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context() if target.scheme == "https" else None

    def post(self, post: Post) -> Reply:
        """POST once; never raises for anything the network or the app does."""
        reply = self._post(post)
        down = reply.failure in _UNREACHABLE
        if (down and not self.unreachable) or (self.unreachable and reply.status is not None):
            self._reachability_changed(down, reply)
        return reply

    def _reachability_changed(self, down: bool, reply: Reply) -> None:
        with self._lock:
            changed, self.unreachable = down != self.unreachable, down
        if changed and down:
            # One warning per run of refusals: a wrong --http-url fails every message alike.
            self.log.warning(
                "http: nothing listens at %s (%s); every message fails and, after MaxRetries, "
                "goes to the dead-letter queue: check --http-url",
                self.target.url("/"),
                reply.detail.split(":", 1)[0],
            )
        elif changed:
            self.log.info("http: %s answers again", self.target.url("/"))

    def _post(self, post: Post) -> Reply:
        began = time.monotonic()
        try:
            data = self._request(post)
        except ValueError as exc:
            return Reply(None, b"", Failure.BAD_REQUEST, f"request-err: {exc}", 0.0)
        sock = self._reuse()
        reused = sock is not None
        if sock is None:
            try:
                sock = self._connect()
            except OSError as exc:
                return self._connect_failed(exc, began)
        try:
            sock.sendall(data)
            response = read_response(sock, DETAIL_BYTES)
        except TimeoutError:
            self._discard(sock)
            took = time.monotonic() - began
            why = f"no answer within InactivityTimeout ({self.inactivity_timeout:g} s); connection closed"
            return Reply(None, b"", Failure.INACTIVITY, f"ETIMEDOUT: {why}", took)
        except (NoResponse, BrokenPipeError, ConnectionResetError) as exc:
            self._discard(sock)
            took = time.monotonic() - began
            # An EOF before any answer, or a reset on a kept-alive socket the app had already
            # dropped, is the app closing the connection; a reset on a fresh socket is an error.
            if isinstance(exc, (NoResponse, BrokenPipeError)) or reused:
                return Reply(
                    None, b"", Failure.CLOSED, "conn-closed: closed by the app before any response", took
                )
            return Reply(None, b"", Failure.RESET, "ECONNRESET: the app reset the connection", took)
        except (BadResponse, OSError) as exc:
            self._discard(sock)
            took = time.monotonic() - began
            return Reply(None, b"", Failure.BAD_RESPONSE, f"response-err: {exc}"[:200], took)
        took = time.monotonic() - began
        if response.keep_alive and not post.closes:
            self._keep(sock)
        else:
            self._discard(sock)
        return Reply(response.status, response.body, None, "", took)

    def close(self) -> None:
        """Close every idle socket."""
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        for sock in idle:
            self._discard(sock)

    # -- the request ----------------------------------------------------------------------------
    def _request(self, post: Post) -> bytes:
        values = "".join(post.headers.values())
        if _BREAKS.search(values) or _BREAKS.search(post.path):
            raise ValueError("a header value or the path contains a line break")
        lines = [f"POST {self.target.target(post.path)} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in post.headers.items()]
        lines.append(f"Host: {self.target.host_header}")
        lines.append(f"Content-Length: {len(post.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        # An attribute such as "café ☕" is legal in SQS but not in Latin-1, HTTP's old charset:
        # non-ASCII text goes out as its UTF-8 bytes.
        return (head.encode("latin-1") if head.isascii() else head.encode("utf-8")) + post.body

    # -- sockets --------------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.target.host, self.target.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.target.host)
        sock.settimeout(self.inactivity_timeout)
        return sock

    def _connect_failed(self, exc: OSError, began: float) -> Reply:
        took = time.monotonic() - began
        where = self.target.url("/")
        if isinstance(exc, ConnectionRefusedError):
            return Reply(None, b"", Failure.REFUSED, f"ECONNREFUSED: nothing listens at {where}", took)
        if isinstance(exc, socket.gaierror):
            return Reply(
                None, b"", Failure.UNRESOLVED, f"EAI_NONAME: cannot resolve {self.target.host}", took
            )
        if isinstance(exc, TimeoutError):
            why = f"no connection within ConnectTimeout ({self.connect_timeout:g} s) to {where}"
            return Reply(None, b"", Failure.CONNECT_TIMEOUT, f"ETIMEDOUT: {why}", took)
        return Reply(None, b"", Failure.RESET, f"{type(exc).__name__}: {exc}"[:200], took)

    def _reuse(self) -> socket.socket | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                sock = self._idle.pop()
            if _still_open(sock):
                return sock
            self._discard(sock)

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(sock)
                return
        self._discard(sock)

    @staticmethod
    def _discard(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed by the app
            # shutdown sends the FIN at once: the app sees the disconnect.
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _still_open(sock: socket.socket) -> bool:
    """True when an idle kept-alive socket has neither been closed by the app nor sent anything."""
    # A readable idle socket holds an EOF (the app closed it) or bytes nobody asked for.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)
