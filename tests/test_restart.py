"""An SQS endpoint killed under a running lab: the CLI agrees on what happened, and the lab heals.

The endpoint is the embedded moto run by `labapp emulator` as a child process, killed with
SIGKILL and started again on the same port, as a learner's terminal would; the stack (`labapp up`)
is pointed at it with LAB_ENDPOINT_URL. The last test does the same to a LocalStack the stack
started itself.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labapp.cli import main
from labapp.runtime.background import read_state
from labapp.runtime.localstack import venv_python
from labapp.runtime.ports import free_port, port_is_free
from labapp.runtime.process import ChildProcess

MESSAGES = 5


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def state() -> dict[str, Any]:
    return read_state() or {}


@pytest.fixture
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    for name in ("LAB_ALLOW_AWS", "LAB_BACKEND", "LAB_LOCAL_HOSTS", "LAB_SHARED_SECRET"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield tmp_path
    finally:
        main(["down"])
        left = read_state()
        if left is not None:  # `down` failed: never leave the stack behind
            os.kill(int(left["pid"]), signal.SIGKILL)


@pytest.fixture
def emulator(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChildProcess]:
    """`labapp emulator` on a free port, as its own process; the test may kill and restart it."""
    port = free_port()
    child = ChildProcess.labapp("emulator", ["emulator", "--port", str(port)], private_home / "emulator.log")
    child.port = port  # type: ignore[attr-defined]
    child.start().wait_ready(lambda: not port_is_free(port), 20, f"the emulator on port {port}")
    monkeypatch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    try:
        yield child
    finally:
        child.stop()


def restart(child: ChildProcess) -> None:
    child.kill()  # SIGKILL: the in-memory queues and messages are gone
    port = child.port  # type: ignore[attr-defined]
    child.start().wait_ready(lambda: not port_is_free(port), 20, f"the emulator on port {port}")


def applied(order_id: str) -> bool:
    ledger = requests.get(f"{state()['worker_url']}/_lab/ledger", timeout=5).json()
    return bool(ledger["applications"].get(f"order:{order_id}") == 1)


def test_a_restarted_endpoint_is_reported_and_healed(
    emulator: ChildProcess, capsys: pytest.CaptureFixture[str], wait_for: Callable[..., Any]
) -> None:
    assert main(["up", "--worker-port", str(free_port())]) == 0
    capsys.readouterr()
    assert state()["owns_endpoint"] is False
    # Delayed, so the daemon leaves them be and the endpoint holds them when it dies.
    assert run(capsys, "send", "held", "--count", str(MESSAGES), "--delay", "900")[0] == 0
    wait_for(lambda: state().get("held", {}).get("messages") == MESSAGES, timeout=20)

    emulator.kill()
    code, out, err = run(capsys, "status")  # used to say "run `labapp up` first"
    assert code == 1 and "does not answer" in out, out + err
    code, out, _ = run(capsys, "doctor")
    assert code == 1 and "FIX Lab stack: nothing answers at" in out

    restart(emulator)
    wait_for(lambda: state().get("restarted_at") is not None, timeout=30)
    sentence = f"the {MESSAGES} messages it held are gone (an in-memory emulator, unlike SQS)."
    code, out, err = run(capsys, "status")
    assert code == 0, out + err
    assert "was restarted at" in out and sentence in out
    assert "lab-worker-queue" in out and "the stack's daemon" in out
    code, out, _ = run(capsys, "doctor")
    assert code == 0 and "--  Endpoint restarts: " in out and sentence in out
    code, out, _ = run(capsys, "up")  # used to say only "already running"
    assert code == 0 and sentence in out

    # The queues are back and the daemon polls them: a new order is processed.
    order = json.dumps({"type": "order", "order_id": "after-restart", "amount": 1})
    assert run(capsys, "send", order)[0] == 0
    wait_for(lambda: applied("after-restart"), timeout=20)
    code, out, _ = run(capsys, "reset")
    assert code == 0 and "Reset:" in out


def test_up_heals_at_once_after_a_restart(
    emulator: ChildProcess, capsys: pytest.CaptureFixture[str], wait_for: Callable[..., Any]
) -> None:
    assert main(["up", "--worker-port", str(free_port())]) == 0
    wait_for(lambda: state().get("held", {}).get("messages") == 0, timeout=20)
    restart(emulator)
    code, out, err = run(capsys, "up")
    assert code == 0, err
    assert "was restarted at" in out and "the 0 messages it held are gone" in out
    order = json.dumps({"type": "order", "order_id": "healed-by-up", "amount": 1})
    assert run(capsys, "send", order)[0] == 0
    wait_for(lambda: applied("healed-by-up"), timeout=20)


@pytest.mark.slow
@pytest.mark.skipif(
    not venv_python().exists(), reason="LocalStack is not installed (`labapp localstack install`)"
)
def test_the_lab_restarts_a_localstack_it_started(
    private_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    wait_for: Callable[..., Any],
) -> None:
    monkeypatch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["up", "--backend", "localstack", "--worker-port", str(free_port())]) == 0
    capsys.readouterr()
    first = state()
    assert first["backend"] == "localstack" and first["owns_endpoint"] is True
    assert run(capsys, "send", "held", "--count", "3", "--delay", "900")[0] == 0
    wait_for(lambda: state().get("held", {}).get("messages") == 3, timeout=20)
    os.kill(int(first["endpoint_pid"]), signal.SIGKILL)
    wait_for(lambda: state().get("restarted_at") is not None, timeout=120)
    code, out, err = run(capsys, "status")
    assert code == 0, out + err
    assert "the 3 messages it held are gone" in out
    order = json.dumps({"type": "order", "order_id": "after-localstack", "amount": 1})
    assert run(capsys, "send", order)[0] == 0
    wait_for(lambda: applied("after-localstack"), timeout=30)
