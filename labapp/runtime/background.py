"""The lab stack as a background process: `labapp up` starts it, `labapp down` stops it.

The stack process writes a state file while it runs; the CLI finds the running lab there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

from labapp import settings
from labapp.errors import LabError, ProcessFailed, WaitTimeout
from labapp.runtime.process import ChildProcess
from labapp.runtime.stack import Stack
from labapp.runtime.supervisor import CHECK_INTERVAL_S, Health, Supervisor, check
from labapp.runtime.wait import stop_on_signals, wait_until
from labapp.sqsd.log import attach_file


def state_file() -> Path:
    """Return where the running stack describes itself."""
    return settings.lab_home() / "stack.json"


def read_state() -> dict[str, Any] | None:
    """Return the running stack's state, or None when no stack process is alive."""
    path = state_file()
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not _alive(int(state.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(state: dict[str, Any]) -> None:
    """Write the stack's state file whole, then rename it, so no reader sees half a file."""
    partial = state_file().with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=2))
    os.replace(partial, state_file())


def serve_forever(stack: Stack, interval: float = CHECK_INTERVAL_S) -> int:
    """Run a stack in the foreground until SIGTERM or Ctrl-C; keep its state file while it runs.

    A supervisor thread looks at the endpoint every `interval` seconds: it restarts an emulator
    the stack started, and after an endpoint restart it makes the queues again, restarts the
    daemon and records when, and how many messages were lost, in the state file.
    """
    stop = stop_on_signals()
    stack.start()
    # As on an EB instance, the daemon's outcomes also go to aws-sqsd/default.log in the lab home; the
    # handler sits on the queue's logger, so daemons the supervisor restarts keep writing there.
    if stack.daemon is not None:
        attach_file(stack.daemon)
    state = stack.describe()
    lock = threading.Lock()

    def report(changes: dict[str, Any]) -> None:
        with lock:
            state.update(changes)
            write_state(state)

    supervisor = Supervisor(stack, report, interval)
    watcher = threading.Thread(target=supervisor.run, args=(stop,), name="supervisor", daemon=True)
    watcher.start()
    try:
        stop.wait()
    finally:
        watcher.join(timeout=30)
        state_file().unlink(missing_ok=True)
        supervisor.remove_marker()
        stack.stop()
    return 0


def endpoint_health(state: dict[str, Any]) -> Health:
    """Look at the running stack's endpoint now, as its supervisor does."""
    from labapp.sqs.client import sqs_client

    marker = state.get("marker")
    if not marker:
        return Health.OK  # a stack that has not planted its marker yet
    return check(sqs_client(state["endpoint_url"]), marker)


def wait_for_heal(previous_marker: str, timeout: float) -> dict[str, Any]:
    """Wait until the supervisor has planted a new marker (the queues are back); return the state."""

    def healed() -> dict[str, Any]:
        state = read_state() or {}
        return state if state.get("marker") not in (None, previous_marker) else {}

    return wait_until(healed, timeout, "the lab to make its queues again")


def spawn(args: list[str], timeout: float = 20) -> dict[str, Any]:
    """Start `labapp serve` detached, wait until its state file appears, and return the state."""
    if read_state() is not None:
        raise LabError("The lab is already running; `labapp status` shows it, `labapp down` stops it.")
    log_path = settings.lab_home() / "stack.log"
    # Its own session: the stack outlives this command and ignores the terminal's Ctrl-C.
    child = ChildProcess.labapp("the lab", ["serve", *args], log_path, new_session=True).start()

    def ready() -> dict[str, Any] | None:
        state = read_state()
        return state if state is not None and state.get("pid") == child.pid else None

    try:
        child.wait_ready(ready, timeout, "the lab to write its state file")
    except ProcessFailed:
        child.stop()
        last = child.tail().splitlines()[-1:] or ["no output"]
        raise LabError(f"The lab did not start: {last[0]} (full log: {log_path}).") from None
    return ready() or {}


def terminate(timeout: float = 60) -> bool:
    """Stop the running stack with SIGTERM; return False when none was running."""
    state = read_state()
    if state is None:
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        _reap(pid)
        return not _alive(pid)

    try:
        wait_until(gone, timeout, f"the lab (pid {pid}) to stop")
    except WaitTimeout:
        raise LabError(
            f"The lab (pid {pid}) did not stop within {timeout:.0f}s; stop it with `kill {pid}`."
        ) from None
    state_file().unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    # When this process spawned the stack itself (tests), collect the zombie so it counts as gone.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
