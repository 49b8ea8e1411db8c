"""`labapp lab`: the stack and JupyterLab start together and stop together, however JupyterLab ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labapp.cli.jupyter import jupyter_argv
from labapp.runtime.ports import free_port, port_is_free
from labapp.runtime.wait import wait_until

pytestmark = pytest.mark.slow
READY_S = 90


class LabCommand:
    """`labapp lab` in its own process group, as a terminal runs it; Ctrl-C goes to the whole group."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.endpoint_port, self.worker_port, self.jupyter_port = free_port(), free_port(), free_port()
        env = dict(
            os.environ,
            LAB_HOME=str(home),
            LAB_ENDPOINT_URL=f"http://127.0.0.1:{self.endpoint_port}",
            JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
            JUPYTER_DATA_DIR=str(home / "jupyter-data"),
            JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        )
        self.output = home / "lab.out"
        argv = [sys.executable, "-m", "labapp", "lab", "--worker-port", str(self.worker_port)]
        argv += ["--jupyter-port", str(self.jupyter_port)]
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.text()
            return "Lab ready" in self.text() and not port_is_free(self.jupyter_port)

        wait_until(ready, READY_S, "`labapp lab` to be ready", interval=0.2)

    def ports_free(self) -> bool:
        return all(port_is_free(p) for p in (self.endpoint_port, self.worker_port, self.jupyter_port))

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCommand]:
    command = LabCommand(tmp_path)
    try:
        yield command
    finally:
        command.stop()


def test_ctrl_c_twice_stops_jupyter_and_the_whole_stack(lab: LabCommand) -> None:
    lab.wait_ready()
    state = json.loads((lab.home / "stack.json").read_text())
    assert state["jupyter_url"].startswith(f"http://127.0.0.1:{lab.jupyter_port}/lab?token=")
    lab.ctrl_c()
    time.sleep(0.5)  # JupyterLab asks to confirm; a second Ctrl-C within five seconds means yes
    lab.ctrl_c()
    assert lab.process.wait(timeout=60) == 0, lab.text()
    wait_until(lab.ports_free, 10, "every port of the lab to be free")
    assert not (lab.home / "stack.json").exists()
    assert "Lab stopped" in lab.text()


def test_sigterm_stops_everything_and_a_second_lab_is_refused(lab: LabCommand, tmp_path: Path) -> None:
    lab.wait_ready()
    env = dict(os.environ, LAB_HOME=str(lab.home))
    second = subprocess.run(
        [sys.executable, "-m", "labapp", "lab"], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 2
    assert "already running" in second.stderr and f":{lab.jupyter_port}/lab?token=" in second.stderr
    lab.process.send_signal(signal.SIGTERM)
    lab.process.wait(timeout=60)
    wait_until(lab.ports_free, 10, "every port of the lab to be free")


def test_root_may_run_jupyter() -> None:
    assert "--allow-root" in jupyter_argv(8888, "t", Path("/tmp"), as_root=True)
    assert "--allow-root" not in jupyter_argv(8888, "t", Path("/tmp"), as_root=False)
    assert "--ServerApp.ip=127.0.0.1" in jupyter_argv(8888, "t", Path("/tmp"), as_root=False)


def test_make_test_says_at_once_how_to_get_the_browser_when_it_may_not_install_it(tmp_path: Path) -> None:
    # As a user who is not root (as `nobody` when the suite itself runs as root), with no browser.
    script = Path(__file__).resolve().parents[1] / "tools" / "ensure_chromium.sh"
    env = {"PATH": os.environ["PATH"], "LAB_CHROMIUM": str(tmp_path / "no-chromium")}
    who = {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30, **who)
    assert done.returncode == 2, done.stderr
    assert "sudo apt-get install -y chromium" in done.stderr
