"""Which SQS endpoint the lab uses: whatever answers (LocalStack, a lab's moto), or one it starts."""

from __future__ import annotations

import dataclasses
import os
from urllib.parse import urlparse

import requests

from labapp import settings
from labapp.errors import EndpointError, NotRunningError
from labapp.runtime.emulator import Emulator
from labapp.runtime.localstack import LocalStack
from labapp.runtime.ports import port_is_free
from labapp.settings import ENDPOINT_PORT, HOST

#: How long the second look at a taken port waits for the endpoint to answer.
BUSY_LOOK_S = 3.0


def identify(endpoint_url: str, timeout: float = 0.5) -> str | None:
    """Return 'localstack', 'moto' or None for whatever answers at endpoint_url."""
    try:
        health = requests.get(f"{endpoint_url}/_localstack/health", timeout=timeout)
        if health.ok and "services" in health.text:
            return "localstack"
        # /moto-api/config is a few bytes; /moto-api/data.json dumps every queue and message and
        # grows slow enough, after a busy session, to miss the timeout.
        moto = requests.get(f"{endpoint_url}/moto-api/config", timeout=timeout)
        if moto.ok and moto.headers.get("Content-Type", "").startswith("application/json"):
            return "moto"
    except requests.RequestException:
        return None
    return None


@dataclasses.dataclass
class Endpoint:
    """An SQS endpoint the lab uses, and the emulator behind it if this process started one."""

    url: str
    backend: str  # "moto", "localstack" or "aws"
    emulator: Emulator | LocalStack | None = None

    @property
    def pid(self) -> int:
        """The process serving the endpoint when this process started it (itself, or LocalStack's child)."""
        if isinstance(self.emulator, LocalStack):
            return self.emulator.pid or 0
        return os.getpid() if self.emulator is not None else 0

    def restart(self) -> None:
        """Start the emulator this process owns again, on the same port (it comes back empty)."""
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator.start()

    def stop(self) -> None:
        """Stop the emulator if this process owns it."""
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None


def find_or_start_endpoint(url: str | None = None, start: bool = True, backend: str = "moto") -> Endpoint:
    """Use whatever answers at url (LocalStack or a lab's moto); otherwise start `backend` there."""
    url = url or settings.endpoint_url()
    found = identify(url)
    if found is not None:
        return Endpoint(url, found)
    if not start:
        raise NotRunningError(f"Nothing answers at {url}; start the lab with `labapp up`.")
    parsed = urlparse(url)
    if parsed.hostname not in (HOST, "localhost"):
        raise EndpointError(f"Nothing answers at {url}, and the lab only starts an emulator on {HOST}.")
    port = parsed.port or ENDPOINT_PORT
    if not port_is_free(port):
        # A busy emulator (a notebook's daemon polling, a check starting its own lab) can miss the
        # first look's short timeout; look once more, patiently, before blaming another program.
        found = identify(url, timeout=BUSY_LOOK_S)
        if found is not None:
            return Endpoint(url, found)
        raise EndpointError(
            f"Port {port} is taken by something that is not an SQS endpoint; run `labapp doctor` to see what."
        )
    if backend == "localstack":
        localstack = LocalStack(port=port).start()
        return Endpoint(localstack.url, "localstack", localstack)
    emulator = Emulator(port=port).start()
    return Endpoint(emulator.url, "moto", emulator)
