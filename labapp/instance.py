"""One local "instance" of the live fleet: the worker app and a daemon in one process.

As on an EB worker instance both run side by side. The daemon starts polling only when the
controller writes 'start' on stdin, so the moment an instance enters service is exact, and the
process stops on SIGTERM (the daemon drains) or when stdin closes, so it cannot outlive the
controller that started it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from labapp.config import LAB_PROFILE
from labapp.queues import sqs_client

log = logging.getLogger("labapp.instance")


class Handle(Protocol):
    """A booted instance: booted(), start() (enter service), terminate(), wait(timeout) -> exited, kill()."""

    def booted(self) -> bool: ...
    def start(self) -> None: ...
    def terminate(self) -> None: ...
    def wait(self, timeout: float) -> bool: ...
    def kill(self) -> None: ...


class ProcessHandle:
    """An instance process (`python -m labapp.instance`) that polls once it reads 'start' on stdin."""

    def __init__(self, name: str, run_dir: Path, endpoint_url: str, queue_url: str, connections: int) -> None:
        self.ready_file = run_dir / f"{name}.ready"
        args = ["--endpoint-url", endpoint_url, "--queue-url", queue_url, "--connections", str(connections)]
        args += ["--ledger", str(run_dir / "ledger.sqlite"), "--ready-file", str(self.ready_file)]
        with open(run_dir / f"{name}.log", "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "labapp.instance", *args],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=out,
            )

    def booted(self) -> bool:
        return self.ready_file.exists()

    def start(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(b"start\n")
            self.process.stdin.flush()
        except OSError:  # it exited already; stop() collects it
            log.warning("fleet: instance pid %s is gone", self.process.pid)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        if self.process.stdin is not None:
            self.process.stdin.close()
        return True

    def kill(self) -> None:
        self.process.kill()
        self.wait(10)


def instance_main(argv: Sequence[str] | None = None) -> int:
    """Run one instance: the worker app, and a daemon that polls once 'start' arrives on stdin."""
    from labapp.daemon import Daemon
    from labapp.httpserver import HttpServer
    from labapp.worker import create_app

    parser = argparse.ArgumentParser(prog="python -m labapp.instance", description=instance_main.__doc__)
    for name in ("--endpoint-url", "--queue-url", "--ledger", "--ready-file"):
        parser.add_argument(name, required=True)
    parser.add_argument("--connections", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("labapp.worker").setLevel(logging.WARNING)  # not a line per message
    stop, go = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        go.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    app = create_app({"LEDGER_PATH": args.ledger})
    options = LAB_PROFILE.replace(HttpConnections=args.connections)
    with HttpServer(app, threads=args.connections + 2) as server:
        sqs = sqs_client(args.endpoint_url)
        daemon = Daemon(sqs, options, queue_url=args.queue_url, http_url=server.url, wait_time_seconds=1)
        threading.Thread(target=_read_commands, args=(on_signal, go), daemon=True).start()
        Path(args.ready_file).write_text(server.url)
        while not go.wait(0.1):
            pass
        if not stop.is_set():
            daemon.run(stop)
        daemon.close()
        log.info("instance: stopped: %s", daemon.counts)
    app.extensions["lab.ledger"].close()
    return 0


def _read_commands(stop: Callable[[], None], go: threading.Event) -> None:
    # End of input means the controller is gone: stop rather than outlive it.
    for line in sys.stdin:
        if line.strip() == "start":
            go.set()
    stop()


if __name__ == "__main__":
    sys.exit(instance_main())
