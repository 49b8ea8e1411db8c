"""LocalStack without Docker: its own virtual environment, started on loopback as the SQS endpoint.

localstack-core imports `warnings.deprecated`, which first appeared in Python 3.13, although its
metadata says 3.8+; so this backend needs a Python 3.13 or newer next to the lab's own Python.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

from labapp.emulator import HOST
from labapp.errors import EndpointError, LabError

VERSION = "2026.3.0"
# Pins measured to make localstack-core 2026.3.0 start on the host.
REQUIREMENTS = [
    f"localstack-core[runtime]=={VERSION}",
    "cbor2<6",
    "pyopenssl<25",
    "cryptography<45",
    "service_identity",
]
VENV = Path(os.environ.get("LAB_LOCALSTACK_VENV", ".venv-localstack"))
_PROBE = "import sys, warnings; sys.exit(0 if hasattr(warnings, 'deprecated') else 1)"


def find_python() -> str | None:
    """Return a Python >= 3.13 interpreter for LocalStack, or None."""
    candidates = [os.environ.get("LAB_LOCALSTACK_PYTHON", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.14", "python3.13")]
    candidates += sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/bin/python3")), reverse=True
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", _PROBE], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def install(venv: Path = VENV) -> Path:
    """Create LocalStack's own virtual environment (once) and return its python."""
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


class LocalStack:
    """localstack-core's runtime (SQS only) as a child process bound to 127.0.0.1; a context manager."""

    def __init__(self, port: int = 4566, venv: Path = VENV, root: str | None = None) -> None:
        self.port = port
        self.venv = venv
        self.root = root or tempfile.mkdtemp(prefix="labapp-localstack-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60) -> LocalStack:
        """Start LocalStack and wait until its health endpoint lists SQS as available."""
        python = venv_python(self.venv)
        if not python.exists():
            raise LabError(
                f"LocalStack is not installed in {self.venv}; run `python -m labapp.localstack install`."
            )
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
        log = open(Path(self.root) / "localstack.log", "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EndpointError(f"LocalStack exited while starting; see {self.root}/localstack.log.")
            try:
                services = (
                    requests.get(f"{self.url}/_localstack/health", timeout=1).json().get("services", {})
                )
                if services.get("sqs") in ("available", "running"):
                    return self
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise EndpointError(
            f"LocalStack did not become ready in {timeout:.0f}s; see {self.root}/localstack.log."
        )

    def stop(self) -> None:
        """Stop the child process (SIGTERM, then SIGKILL after 15 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    """`python -m labapp.localstack install|python`: set up the backend or print the interpreter found."""
    command = argv[0] if argv else "install"
    if command == "python":
        python = find_python()
        print(python or "no Python >= 3.13 found")
        return 0 if python else 1
    if command == "install":
        try:
            print(install())
        except LabError as exc:
            print(f"labapp: {exc}", file=sys.stderr)
            return 2
        return 0
    print("usage: python -m labapp.localstack install|python", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
