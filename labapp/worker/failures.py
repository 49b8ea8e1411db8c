"""Failure injection for the worker: make it fail, slow down, hang or crash while it runs."""

from __future__ import annotations

import dataclasses
import random
import threading
from typing import Any

from labapp.errors import ConfigError
from labapp.worker.limits import short

#: The longest injected latency: ten minutes, like the longest simulated work.
MAX_LATENCY_MS = 600_000


@dataclasses.dataclass(frozen=True)
class Failures:
    """What the worker should do wrong; all off by default."""

    error_rate: float = 0.0  # share of requests answered with `status`, 0..1
    status: int = 500
    latency_ms: int = 0  # added before answering
    hang: bool = False  # never answer until hang is turned off
    crash: bool = False  # the worker process dies on the next request

    def __post_init__(self) -> None:
        if isinstance(self.error_rate, bool) or not isinstance(self.error_rate, (int, float)):
            raise ConfigError(f"error_rate must be a number from 0 to 1; got {short(self.error_rate)}.")
        if not 0 <= self.error_rate <= 1:
            raise ConfigError(f"error_rate must be from 0 to 1; got {short(self.error_rate)}.")
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ConfigError(
                f"status must be an HTTP status code from 100 to 599; got {short(self.status)}."
            )
        if (
            isinstance(self.latency_ms, bool)
            or not isinstance(self.latency_ms, int)
            or not 0 <= self.latency_ms <= MAX_LATENCY_MS
        ):
            raise ConfigError(
                f"latency_ms must be a whole number of milliseconds from 0 to {MAX_LATENCY_MS}; "
                f"got {short(self.latency_ms)}."
            )
        for name in ("hang", "crash"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {short(getattr(self, name))}.")

    @classmethod
    def from_json(cls, data: Any) -> Failures:
        """Build from a JSON object, naming any unknown field."""
        if not isinstance(data, dict):
            raise ConfigError('failures must be a JSON object, e.g. {"error_rate": 0.5}.')
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown failure setting {short(unknown[0])}; known: {', '.join(sorted(known))}."
            )
        return cls(**data)


class FailureSwitch:
    """The live failure settings, shared by the worker's request threads."""

    def __init__(self, seed: int | None = None) -> None:
        self._failures = Failures()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.unhung = threading.Event()
        self.unhung.set()

    @property
    def current(self) -> Failures:
        return self._failures

    def set(self, failures: Failures) -> None:
        """Apply new settings at once; turning hang off releases hanging requests."""
        self._failures = failures
        if failures.hang:
            self.unhung.clear()
        else:
            self.unhung.set()

    def update(self, **changes: Any) -> Failures:
        """Change some settings and return the result."""
        self.set(Failures.from_json({**dataclasses.asdict(self._failures), **changes}))
        return self._failures

    def reset(self) -> None:
        """Turn every injected failure off."""
        self.set(Failures())

    def roll_error(self) -> bool:
        """Return True when this request should fail, by error_rate."""
        rate = self._failures.error_rate
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate
