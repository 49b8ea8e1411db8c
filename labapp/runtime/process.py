"""The one way the lab runs a child process: a log file, a readiness check, SIGTERM then SIGKILL.

Every caller (the LocalStack backend, the background stack, fleet instances, the chaos suite's
worker and daemon, the benchmarks' helpers) uses this class, so stopping is done right once:
a child is always reaped, and one that ignores SIGTERM is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from labapp.errors import ProcessFailed, WaitTimeout
from labapp.runtime.lifecycle import StartStop
from labapp.runtime.wait import wait_until

#: How long a child gets between SIGTERM and SIGKILL unless the caller says otherwise.
STOP_TIMEOUT_S = 10.0


class ChildProcess(StartStop):
    """One child process with its output appended to a log file; a context manager.

    `name` is what errors call it, `argv` the command line and `log_path` the file its stdout and
    stderr go to (None: the child shares this process's terminal, stdin included, for a child a
    person works with).
    `env` replaces the environment when given (PYTHONUNBUFFERED is always set, so a log shows
    lines as they are written); `stdin_pipe` lets the parent send lines (see `send`);
    `new_session` detaches the child from the terminal's Ctrl-C, for a process meant to outlive
    the command that started it.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path | None,
        *,
        env: Mapping[str, str] | None = None,
        stdin_pipe: bool = False,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path) if log_path is not None else None
        self.env = dict(env) if env is not None else None
        self.stdin_pipe = stdin_pipe
        self.new_session = new_session
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    @classmethod
    def labapp(cls, name: str, args: Sequence[str], log_path: Path, **kwargs: object) -> ChildProcess:
        """Return a child that runs `python -m labapp ARGS` with this interpreter."""
        return cls(name, [sys.executable, "-m", "labapp", *args], log_path, **kwargs)  # type: ignore[arg-type]

    # -- starting -----------------------------------------------------------------------------
    def start(self) -> ChildProcess:
        """Start the process (again); raise ProcessFailed if it is still running."""
        if self.alive:
            raise ProcessFailed(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 -- kept open for the child's lifetime
            self._log_offset = self._log.tell()
        env = {**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL if self._log else None,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            env=env,
            start_new_session=self.new_session,
        )
        self.starts += 1
        return self

    def wait_ready(self, ready: Callable[[], object], timeout: float, what: str = "") -> None:
        """Wait until ready() is truthy; raise ProcessFailed if the child exits or times out first."""

        def check() -> object:
            if not self.alive:
                raise ProcessFailed(
                    f"{self.name} exited with {self.returncode} while starting: {self.tail()}"
                )
            return ready()

        try:
            wait_until(check, timeout, what or f"{self.name} to be ready")
        except WaitTimeout as exc:
            raise ProcessFailed(f"{exc}; see {self.log_path or 'its output above'}") from None

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Wait until the process, since its last start, printed text."""
        self.wait_ready(lambda: text in self.output(), timeout, f"{self.name} to print {text!r}")

    def send(self, line: str) -> bool:
        """Write one line to the child's stdin; return False when it has gone."""
        if self.process is None or self.process.stdin is None:
            return False
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            return False
        return True

    # -- looking ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        """True while the process runs (this also reaps it once it has exited)."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def output(self, since_start: bool = True) -> str:
        """Return what the process wrote (since its last start, or in all its runs)."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as file:
                file.seek(self._log_offset if since_start else 0)
                return file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, chars: int = 600) -> str:
        """Return the end of the output since the last start, or 'no output'."""
        return self.output()[-chars:].strip() or "no output"

    # -- stopping -----------------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        """Wait for the process to exit by itself; return False on timeout."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._close_pipes()
        return True

    def request_stop(self) -> None:
        """Send SIGTERM without waiting (the child drains and exits in its own time)."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> int | None:
        """SIGKILL the process and reap it; return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(timeout=10)
        self._close_pipes()
        return code

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the process and wait; SIGKILL it and raise ProcessFailed if it does not exit in time."""
        if self.process is None:
            raise ProcessFailed(f"{self.name} was never started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.kill()
            raise ProcessFailed(f"{self.name} did not exit within {timeout:g}s of SIGTERM")
        code = self.process.returncode
        return int(code)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """End the process whatever its state: SIGTERM, then SIGKILL; always reap it."""
        if self.alive:
            with contextlib.suppress(ProcessFailed):
                self.terminate(timeout)
        self.kill()

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
