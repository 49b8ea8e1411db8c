"""`labapp doctor`: check the machine and the lab, and print one fix per problem."""

from __future__ import annotations

import dataclasses
import shutil
import sys

import requests

from labapp.runtime.background import read_state
from labapp.runtime.endpoint import identify
from labapp.runtime.ports import port_is_free
from labapp.settings import ENDPOINT_PORT as DEFAULT_PORT
from labapp.settings import WORKER_PORT
from labapp.settings import endpoint_url as default_endpoint_url


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    """Return every check, in the order a person would look."""
    checks = [
        Check(
            "Python",
            sys.version_info >= (3, 10),
            sys.version.split()[0],
            "Install Python 3.10 or newer, then run `make lab` again.",
        )
    ]
    state = read_state()
    endpoint = (state or {}).get("endpoint_url") or default_endpoint_url()
    backend = identify(endpoint)
    if backend:
        checks.append(Check("SQS endpoint", True, f"{backend} at {endpoint}"))
    elif port_is_free(DEFAULT_PORT):
        checks.append(
            Check("SQS endpoint", False, f"nothing at {endpoint}", "Start the lab with `labapp up`.")
        )
    else:
        checks.append(
            Check(
                "SQS endpoint",
                False,
                f"port {DEFAULT_PORT} is taken by something that is not SQS",
                f"Find it with `lsof -i :{DEFAULT_PORT}` (or `ss -ltnp`) and stop it, or set LAB_ENDPOINT_URL.",
            )
        )
    if state is None:
        worker_port_ok = port_is_free(WORKER_PORT)
        checks.append(
            Check(
                "Lab stack",
                worker_port_ok,
                "not running" + ("" if worker_port_ok else f"; port {WORKER_PORT} is taken"),
                "Run `labapp up`."
                if worker_port_ok
                else f"Free port {WORKER_PORT} or use `labapp up --worker-port N`.",
            )
        )
    else:
        try:
            health = requests.get(f"{state['worker_url']}/_lab/health", timeout=2).json()
            checks.append(Check("Worker", True, f"answers at {state['worker_url']}"))
            failures = health.get("failures", {})
            injected = [k for k, v in failures.items() if v and k != "status"]
            checks.append(
                Check(
                    "Injected failures",
                    not injected,
                    ", ".join(injected) or "none",
                    "Turn them off with `labapp reset`.",
                )
            )
        except (requests.RequestException, ValueError):
            checks.append(
                Check("Worker", False, "does not answer", "Restart the lab: `labapp down && labapp up`.")
            )
    checks.append(
        Check(
            "Docker (optional)",
            True,
            "found" if shutil.which("docker") else "not installed: the classroom compose path is unavailable",
        )
    )
    return checks
