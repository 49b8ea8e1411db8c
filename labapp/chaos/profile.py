"""What every part of the chaos suite shares: its sqsd options, message kinds, and its error."""

from __future__ import annotations

import enum

from labapp.errors import LabError
from labapp.sqsd.options import SqsdOptions

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


class Kind(str, enum.Enum):
    """What a planned message should become: applied once, or in the DLQ after MaxRetries."""

    GOOD = "good"  # applied once
    POISON = "poison"  # answered 400 every time: the DLQ
    SLOW = "slow"  # outlasts InactivityTimeout every time: applied once, then the DLQ

    def __str__(self) -> str:
        return self.value


GOOD, POISON, SLOW = Kind.GOOD, Kind.POISON, Kind.SLOW


class ChaosError(LabError):
    """A chaos run could not set up, inject a fault, or settle in time."""
