"""`labapp lab`: the lab stack and JupyterLab in one process, so they start and stop together.

JupyterLab runs as this process's child. Ctrl-C reaches both (they share the terminal's process
group); JupyterLab handles it as it always does, and when it exits, by Ctrl-C, by its File menu,
by SIGTERM or by crashing, the stack stops with it. A second `labapp lab` finds the first one
through the stack's state file and says where it is, instead of starting another JupyterLab.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labapp import settings
from labapp.errors import LabError, PortInUseError

if TYPE_CHECKING:
    from labapp.runtime.stack import Stack

#: JupyterLab's usual port; a second server would quietly take the next one, so the lab refuses.
JUPYTER_PORT = 8888
NOTEBOOKS = settings.ROOT / "notebooks"
#: How long JupyterLab may take to shut down its kernels after SIGTERM.
JUPYTER_STOP_TIMEOUT_S = 20.0


def jupyter_argv(port: int, token: str, root_dir: Path, as_root: bool) -> list[str]:
    """Return the command line of the lab's JupyterLab: loopback only, our token, the notebooks."""
    argv = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--ServerApp.ip={settings.HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
    ]
    if as_root:
        argv.append("--allow-root")
    return argv


def _publish(stack: Stack, extra: dict[str, Any]) -> None:
    from labapp.runtime.background import state_file

    # Written whole, then renamed, so `labapp status` never reads half a file.
    partial = state_file().with_suffix(".tmp")
    partial.write_text(json.dumps({**stack.describe(), **extra}, indent=2))
    os.replace(partial, state_file())


def cmd_lab(args: argparse.Namespace) -> int:
    """Start the stack, run JupyterLab until it exits, then stop the stack."""
    # Imported here: `labapp --help` should not pay for the whole runtime.
    from labapp.runtime.background import read_state, state_file
    from labapp.runtime.localstack import install
    from labapp.runtime.ports import port_is_free
    from labapp.runtime.process import ChildProcess
    from labapp.runtime.stack import Stack
    from labapp.sqsd.options import LAB_PROFILE

    running = read_state()
    if running is not None:
        where = running.get("jupyter_url") or "started by `labapp up`, without JupyterLab"
        raise LabError(f"The lab is already running ({where}); open that one, or stop it with `labapp down`.")
    if not port_is_free(args.jupyter_port):
        raise PortInUseError(
            f"Port {args.jupyter_port} is taken, probably by another JupyterLab (`jupyter server list` shows "
            "it); stop it, or choose another port with --jupyter-port."
        )
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if as_root:
        print("labapp: running as root (a container or a classroom image?); JupyterLab is allowed to.")
    if args.backend == "localstack":
        install()
    stack = Stack(LAB_PROFILE, worker_port=args.worker_port, backend=args.backend).start()
    token = secrets.token_hex(16)
    url = f"http://{settings.HOST}:{args.jupyter_port}/lab?token={token}"
    jupyter = ChildProcess("JupyterLab", jupyter_argv(args.jupyter_port, token, NOTEBOOKS, as_root), None)
    # Ctrl-C goes to JupyterLab too (it asks to confirm); this process waits for it either way. A
    # handler that does nothing, not SIG_IGN: an ignored signal would stay ignored in the child.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: jupyter.request_stop())
    try:
        _publish(stack, {"jupyter_url": url})
        jupyter.start()
        print(
            f"Lab ready: open {url}\n  (notebook 00_setup_check.ipynb first; Ctrl-C twice stops everything)",
            flush=True,  # at once, also when stdout is a file or a pipe
        )
        while not jupyter.wait(timeout=1):
            pass
        return 0 if jupyter.returncode in (0, -signal.SIGTERM, -signal.SIGINT) else 1
    finally:
        jupyter.stop(timeout=JUPYTER_STOP_TIMEOUT_S)
        state_file().unlink(missing_ok=True)
        stack.stop()
        signal.signal(signal.SIGINT, previous)
        print("Lab stopped: JupyterLab, the worker, the daemon and the SQS endpoint.")
