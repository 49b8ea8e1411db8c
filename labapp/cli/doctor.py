"""`labapp doctor`: check the machine and the lab, and print one fix per problem."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from labapp.runtime.background import endpoint_health, read_state
from labapp.runtime.endpoint import identify
from labapp.runtime.ports import port_is_free
from labapp.runtime.supervisor import Health, loss_sentence
from labapp.settings import ENDPOINT_PORT as DEFAULT_PORT
from labapp.settings import ROOT, SHARED_SECRET_ENV, WORKER_PORT
from labapp.settings import endpoint_url as default_endpoint_url


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False  # reported, but never makes the doctor fail


def run_checks(root: Path = ROOT) -> list[Check]:
    """Return every check, in the order a person would look; `root` holds docker-compose.yml."""
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
        checks += _endpoint_kept_its_queues(state)
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
    return checks + docker_checks(root)


def _endpoint_kept_its_queues(state: dict[str, Any]) -> list[Check]:
    health = endpoint_health(state)
    note = loss_sentence(state)
    if health is Health.OK:
        # Healed already: nothing to fix, but the lost messages are worth knowing about.
        return [Check("Endpoint restarts", False, note, optional=True)] if note else []
    if health is Health.VANISHED:
        detail = f"nothing answers at {state['endpoint_url']}" + (f": {note}" if note else "")
    else:
        detail = note or f"{state['endpoint_url']} was restarted and lost the lab's queues"
    return [
        Check(
            "Lab stack", False, detail, "Run `labapp up`: it makes the queues again and restarts the daemon."
        )
    ]


#: How long a docker command may take before the engine counts as not answering.
DOCKER_TIMEOUT_S = 15


def _docker(*args: str) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    said = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode == 0, said[0] if said else f"exit {done.returncode}"


def docker_checks(root: Path) -> list[Check]:
    """Check what the classroom path (docker compose) needs: an engine, the compose plugin, a .env."""
    name = "Docker (optional)"
    if shutil.which("docker") is None:
        return [Check(name, False, "not installed: the classroom compose path is unavailable", optional=True)]
    engine_ok, engine = _docker("info", "--format", "{{.ServerVersion}}")
    compose_ok, compose = _docker("compose", "version", "--short")
    checks = [
        Check(
            "Docker engine (optional)",
            engine_ok,
            f"answers (server {engine})" if engine_ok else f"installed, but no engine answers: {engine}",
            "Start Docker (Docker Desktop, or `sudo systemctl start docker`); only the compose path needs it.",
            optional=True,
        ),
        Check(
            "Docker compose plugin (optional)",
            compose_ok,
            f"version {compose}" if compose_ok else "missing: `docker compose` is not a docker command here",
            "Install the compose plugin (Debian/Ubuntu: `sudo apt-get install docker-compose-plugin`).",
            optional=True,
        ),
    ]
    if (root / "docker-compose.yml").exists():
        env = root / ".env"
        secret = _env_value(env, SHARED_SECRET_ENV)
        checks.append(
            Check(
                "Compose .env (optional)",
                bool(secret),
                f"{env} sets {SHARED_SECRET_ENV}"
                if secret
                else f"no {SHARED_SECRET_ENV} in {env}: docker compose refuses to start without it",
                "Run `./docker/make-env.sh` once; it writes a random secret to .env.",
                optional=True,
            )
        )
    return checks


def _env_value(path: Path, name: str) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("\"'")
    return ""
