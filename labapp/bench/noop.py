"""`python -m labapp.bench.noop PORT [LATENCY_MS]`: an app that answers 200, at once or after a delay.

It runs in a process of its own, so the daemon being measured never shares its interpreter (and
its GIL) with the app it POSTs to. It is a few lines of asyncio rather than the worker's WSGI
server: on a two-core machine every millisecond the app spends is taken from the daemon and the
SQS endpoint, and this app's share is about a third of waitress's. It speaks just enough HTTP/1.1
for the daemon: keep-alive requests with a Content-Length body.
"""

from __future__ import annotations

import asyncio
import signal
import sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_LENGTH = b"content-length:"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency_s: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[: len(_LENGTH)].lower() == _LENGTH:
                    length = int(line[len(_LENGTH) :])
            if length:
                await reader.readexactly(length)
            if latency_s:
                await asyncio.sleep(latency_s)
            writer.write(ANSWER)
            if b"\r\nconnection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency_ms: int = 0, host: str = "127.0.0.1") -> None:
    """Answer every POST on host:port with 200 after `latency_ms`, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(
        lambda r, w: _serve(r, w, latency_ms / 1000), host=host, port=port, backlog=256
    )
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))
