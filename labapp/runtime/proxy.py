"""A reverse proxy in front of the worker, as nginx is on EB's Linux platforms.

sqsd POSTs to port 80, where nginx forwards each request to the app and waits for its answer
for at most `proxy_read_timeout` (60 s unless the bundle raises it): a slower answer becomes a
504 for sqsd, which counts it as a failure while the app goes on working
(docs/aws-behaviour.md#nginx-504, #nginx-fix). This one forwards the request line, headers and
body unchanged, and passes the app's status and body back.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from labapp.errors import ConfigError
from labapp.runtime.lifecycle import StartStop
from labapp.runtime.servers import HttpServer

log = logging.getLogger("labapp.runtime")

#: nginx's proxy_read_timeout when nothing raises it, in seconds.
NGINX_READ_TIMEOUT_S = 60
#: How long the proxy waits for the app to accept a connection (nginx's proxy_connect_timeout).
CONNECT_TIMEOUT_S = 5
#: Headers about one hop only: the proxy sets its own.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
)
#: nginx's own pages for the two ways an upstream fails.
TIMED_OUT = (504, "Gateway Time-out")
BAD_GATEWAY = (502, "Bad Gateway")

StartResponse = Callable[..., Any]


def _page(status: tuple[int, str]) -> bytes:
    code, reason = status
    return f"<html><head><title>{code} {reason}</title></head><body><center><h1>{code} {reason}</h1></center><hr><center>nginx</center></body></html>\n".encode()


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_BY_HOP
    }
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


class ReverseProxy(StartStop):
    """Forward every request to `upstream` (an http:// URL) and answer 504 after `read_timeout` s.

    `read_timeout` may change while the proxy runs (a new nginx config, reloaded); `threads` is
    how many requests it forwards at once.
    """

    def __init__(self, upstream: str, read_timeout: float = NGINX_READ_TIMEOUT_S, threads: int = 32) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ConfigError(f"the proxy forwards to an http://host:port URL; got {upstream!r}.")
        self.upstream = (parts.hostname, parts.port)
        self.read_timeout = read_timeout
        self.timeouts = 0  # 504s answered, as nginx's error log would count them
        self.server = HttpServer(self._forward, threads=threads)

    @property
    def read_timeout(self) -> float:
        """Seconds the proxy waits for the app's answer (nginx's proxy_read_timeout)."""
        return self._read_timeout

    @read_timeout.setter
    def read_timeout(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 3600:
            raise ConfigError(
                f"read_timeout must be a number of seconds above 0, at most 3600; got {seconds!r}."
            )
        self._read_timeout = float(seconds)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ReverseProxy:
        """Listen on a free loopback port."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop listening; requests still waiting for the app are cut."""
        self.server.stop()

    def _forward(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        target = environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
        connection = http.client.HTTPConnection(*self.upstream, timeout=CONNECT_TIMEOUT_S)
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(self._read_timeout)
            connection.request(environ["REQUEST_METHOD"], target, body, _request_headers(environ))
            reply = connection.getresponse()
            content = reply.read()
        except TimeoutError:
            self.timeouts += 1
            log.info("proxy: upstream timed out after %.1f s on %s", self._read_timeout, target)
            return self._error(TIMED_OUT, start_response)
        except (OSError, http.client.HTTPException) as exc:
            log.info("proxy: upstream failed on %s: %s", target, exc)
            return self._error(BAD_GATEWAY, start_response)
        finally:
            connection.close()
        headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in HOP_BY_HOP]
        start_response(f"{reply.status} {reply.reason}", [*headers, ("Content-Length", str(len(content)))])
        return [content]

    @staticmethod
    def _error(status: tuple[int, str], start_response: StartResponse) -> Iterable[bytes]:
        page = _page(status)
        start_response(
            f"{status[0]} {status[1]}", [("Content-Type", "text/html"), ("Content-Length", str(len(page)))]
        )
        return [page]
