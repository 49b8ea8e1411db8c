"""The shape every running part shares: `start()` returns the part, `stop()` ends it, `with` does both."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

S = TypeVar("S", bound="StartStop")


class StartStop:
    """A part with start() and stop(); as a context manager it starts on entry and always stops."""

    def start(self: S) -> S:
        """Start the part and return it."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the part; safe to call twice."""
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
