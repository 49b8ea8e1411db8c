"""Units and argument checks the scaling models share: seconds, and numbers that must be positive."""

from __future__ import annotations

import numpy as np

from labapp.errors import ConfigError

DAY_S = 86400
HOUR_S = 3600


def require_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ConfigError naming `name` unless value is more than 0 (or 0, with allow_zero)."""
    if not (value >= 0 if allow_zero else value > 0):
        raise ConfigError(f"{name} must be {'0 or more' if allow_zero else 'more than 0'}; got {value}.")


def require_whole(name: str, value: int, low: int) -> None:
    """Raise ConfigError naming `name` unless value is a whole number of seconds, `low` or more."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be a whole number of seconds, {low} or more; got {value!r}.")
