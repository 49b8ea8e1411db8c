"""What every part of the chaos suite shares: its sqsd options, message kinds, and small waits."""

from __future__ import annotations

import time
from collections.abc import Callable

from labapp.config import SqsdOptions
from labapp.errors import LabError

# Short timeouts so that retries, redeliveries and trips to the DLQ take seconds. MaxRetries is
# higher than the lab profile's 3: a healthy message in flight when the worker dies fails twice
# (refused, refused again while it restarts) and may then meet an injected 5xx; it must not land
# in the DLQ for that.
CHAOS_PROFILE = SqsdOptions(
    HttpConnections=16,
    ConnectTimeout=1,
    InactivityTimeout=2,
    VisibilityTimeout=5,
    ErrorVisibilityTimeout=1,
    RetentionPeriod=3600,
    MaxRetries=6,
)

GOOD, POISON, SLOW = "good", "poison", "slow"


class ChaosError(LabError):
    """A chaos run could not set up, inject a fault, or settle in time."""


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll condition until it holds; raise ChaosError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
