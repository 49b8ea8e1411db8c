"""LocalStack without Docker: its own virtual environment, started on loopback as the SQS endpoint.

localstack-core imports `warnings.deprecated`, which first appeared in Python 3.13, although its
metadata says 3.8+; so this backend needs a Python 3.13 or newer next to the lab's own Python.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from labapp import settings
from labapp.errors import EndpointError, LabError, ProcessFailed
from labapp.runtime.process import ChildProcess
from labapp.runtime.servers import Server
from labapp.settings import ENDPOINT_PORT, HOST

VERSION = "2026.3.0"
# Pins measured to make localstack-core 2026.3.0 start on the host.
REQUIREMENTS = [
    f"localstack-core[runtime]=={VERSION}",
    "cbor2<6",
    "pyopenssl<25",
    "cryptography<45",
    "service_identity",
]
_PROBE = "import sys, warnings; sys.exit(0 if hasattr(warnings, 'deprecated') else 1)"


def find_python() -> str | None:
    """Return a Python >= 3.13 interpreter for LocalStack, or None."""
    candidates = [settings.localstack_python()]
    candidates += [shutil.which(name) or "" for name in ("python3.14", "python3.13")]
    candidates += sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/bin/python3")), reverse=True
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", _PROBE], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def venv_python(venv: Path | None = None) -> Path:
    """Return the python of LocalStack's virtual environment."""
    return (venv or settings.localstack_venv()) / "bin" / "python"


def install(venv: Path | None = None) -> Path:
    """Create LocalStack's own virtual environment (once) and return its python."""
    venv = venv or settings.localstack_venv()
    python = venv_python(venv)
    stamp = venv / f".localstack-{VERSION}"
    if stamp.exists():
        return python
    base = find_python()
    if base is None:
        raise LabError(
            "The LocalStack backend needs Python 3.13 or newer (e.g. `pyenv install 3.13`); "
            "the default moto backend needs nothing more."
        )
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    stamp.touch()
    return python


class LocalStack(Server):
    """localstack-core's runtime (SQS only) as a child process bound to 127.0.0.1; a context manager."""

    def __init__(self, port: int = ENDPOINT_PORT, venv: Path | None = None, root: str | None = None) -> None:
        self.host = HOST
        self.port = port
        self.venv = venv or settings.localstack_venv()
        self.root = root or tempfile.mkdtemp(prefix="labapp-localstack-")
        self.child: ChildProcess | None = None

    def start(self, timeout: float = 60) -> LocalStack:
        """Start LocalStack and wait until its health endpoint lists SQS as available."""
        python = venv_python(self.venv)
        if not python.exists():
            raise LabError(f"LocalStack is not installed in {self.venv}; run `labapp localstack install`.")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "LOCALSTACK_")) or key == "LOCALSTACK_AUTH_TOKEN"
        }
        env.update(
            SERVICES="sqs",
            GATEWAY_LISTEN=f"{HOST}:{self.port}",
            FILESYSTEM_ROOT=self.root,
            # Offline-friendly: no certificate download, no DNS server, no usage events.
            SKIP_SSL_CERT_DOWNLOAD="1",
            DNS_ADDRESS="0",
            DISABLE_EVENTS="1",
            # Queue URLs like http://127.0.0.1:4566/queue/... instead of a public DNS name.
            SQS_ENDPOINT_STRATEGY="path",
        )
        log_path = Path(self.root) / "localstack.log"
        self.child = ChildProcess(
            "LocalStack", [str(python), "-m", "localstack.runtime.main"], log_path, env=env
        )
        self.child.start()
        try:
            self.child.wait_ready(self._sqs_available, timeout, "LocalStack's SQS to be available")
        except ProcessFailed as exc:
            self.stop()
            raise EndpointError(f"LocalStack did not start: {exc}") from None
        return self

    @property
    def alive(self) -> bool:
        """True while LocalStack's process runs."""
        return self.child is not None and self.child.alive

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def _sqs_available(self) -> bool:
        try:
            services = requests.get(f"{self.url}/_localstack/health", timeout=1).json().get("services", {})
        except (requests.RequestException, ValueError):
            return False
        return services.get("sqs") in ("available", "running")

    def stop(self) -> None:
        """Stop the child process (SIGTERM, then SIGKILL after 15 s)."""
        child, self.child = self.child, None
        if child is not None:
            child.stop(timeout=15)
