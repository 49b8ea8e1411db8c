"""Traffic profiles: messages arriving per second, and the named traces the course and benchmarks use.

Every profile is a NumPy array of whole message counts, one per second; a profile takes its own
`seed`, so the same call always gives the same traffic.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from labapp.errors import ConfigError
from labapp.scaling.units import DAY_S, HOUR_S, require_positive, require_whole


def _poisson(rate: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(np.maximum(rate, 0.0)).astype(np.int64)


def steady(rate: float, duration_s: int = DAY_S, *, seed: int = 0) -> np.ndarray:
    """Return Poisson arrivals per second at a constant mean `rate` (messages per second)."""
    require_positive("rate", rate, allow_zero=True)
    require_whole("duration_s", duration_s, 1)
    return _poisson(np.full(duration_s, float(rate)), seed)


def spike(
    base: float, peak: float, start: int, length: int, duration_s: int = DAY_S, *, seed: int = 0
) -> np.ndarray:
    """Return a flash sale: `base` messages per second, and `peak` from second `start` for `length` s."""
    require_positive("base", base, allow_zero=True)
    require_positive("peak", peak, allow_zero=True)
    require_whole("start", start, 0)
    require_whole("length", length, 1)
    require_whole("duration_s", duration_s, 1)
    rate = np.full(duration_s, float(base))
    rate[start : start + length] = peak
    return _poisson(rate, seed)


def diurnal(
    mean: float, amplitude: float, period: int = DAY_S, duration_s: int = DAY_S, *, seed: int = 0
) -> np.ndarray:
    """Return a daily cycle: lowest at second 0 (midnight), `mean + amplitude` at half a period."""
    require_positive("mean", mean, allow_zero=True)
    require_positive("period", period)
    require_whole("duration_s", duration_s, 1)
    if not 0 <= amplitude <= mean:
        raise ConfigError(f"amplitude must be from 0 to mean ({mean}); got {amplitude}.")
    t = np.arange(duration_s)
    return _poisson(mean - amplitude * np.cos(2 * np.pi * t / period), seed)


def bursty(
    rate: float, burst_every: int, burst_size: int, duration_s: int = DAY_S, *, seed: int = 0
) -> np.ndarray:
    """Return Poisson arrivals at `rate` plus `burst_size` messages at once every `burst_every` s."""
    require_positive("rate", rate, allow_zero=True)
    require_whole("burst_every", burst_every, 1)
    require_whole("burst_size", burst_size, 0)
    require_whole("duration_s", duration_s, 1)
    arrivals = _poisson(np.full(duration_s, float(rate)), seed)
    arrivals[::burst_every] += burst_size
    return arrivals


def from_csv(path: str | Path, duration_s: int | None = None) -> np.ndarray:
    """Read arrivals per second from a CSV file with a `second,count` header row.

    Each later row gives a whole second (0 or more) and how many messages arrived in it. Rows may
    come in any order and may skip seconds (no arrivals); a second listed twice adds up. The
    profile lasts until the last listed second, or `duration_s` if given.
    """
    path = Path(path)
    try:
        # utf-8-sig: spreadsheets often start a CSV export with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise ConfigError(f"Cannot read arrivals file {path}: {err.strerror or err}.") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path} is not a CSV text file ({err}).") from err
    if not rows or [c.strip().lower() for c in rows[0]] != ["second", "count"]:
        raise ConfigError(f"{path} must start with the header row 'second,count'.")
    seconds: list[int] = []
    counts: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            second, count = (int(c) for c in row)
        except ValueError:
            raise ConfigError(
                f"{path} line {line}: expected two whole numbers 'second,count'; got {row}."
            ) from None
        if second < 0 or count < 0:
            raise ConfigError(f"{path} line {line}: second and count must be 0 or more; got {row}.")
        if duration_s is not None and second >= duration_s:
            raise ConfigError(f"{path} line {line}: second {second} is past duration_s ({duration_s}).")
        seconds.append(second)
        counts.append(count)
    if duration_s is None and not seconds:
        raise ConfigError(f"{path} has no data rows after its 'second,count' header.")
    length = duration_s if duration_s is not None else max(seconds) + 1
    arrivals = np.zeros(length, dtype=np.int64)
    np.add.at(arrivals, np.asarray(seconds, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    return arrivals


# -- the named traces -------------------------------------------------------------------------------
def busy_day() -> np.ndarray:
    """Return notebook 07's day of traffic: 5 to 35 messages a second, quietest at midnight."""
    return diurnal(20, 15)


def flash_sale() -> np.ndarray:
    """Return notebook 07's flash sale: 4 messages a second, 60 for 20 minutes from 01:00, 4 hours."""
    return spike(4, 60, HOUR_S, 1200, 4 * HOUR_S, seed=1)


def lab_flash_sale() -> np.ndarray:
    """Return the flash sale sized for a laptop's live fleet: 3 a minute, 18 a minute from minute 6 to 16, 30 minutes."""
    return spike(3 / 60, 18 / 60, 6 * 60, 10 * 60, 30 * 60, seed=3)


#: The seed article's flash sale: "10,000 orders in the queue". The sale opens at minute 2 and the
#: orders arrive evenly over 8 minutes; the trace runs on for the fleet to drain and scale in.
SALE_ORDERS = 10_000
SALE_OPENS_S = 2 * 60
SALE_LASTS_S = 8 * 60
SALE_TRACE_S = 40 * 60


def order_flash_sale() -> np.ndarray:
    """Return the seed article's sale: exactly 10,000 orders, evenly from minute 2 to minute 10, 40 minutes."""
    # Evenly, not Poisson: the total is the article's number exactly, so a reconciliation reads 10,000.
    edges = np.floor(np.linspace(0, SALE_ORDERS, SALE_LASTS_S + 1)).astype(np.int64)
    arrivals = np.zeros(SALE_TRACE_S, dtype=np.int64)
    arrivals[SALE_OPENS_S : SALE_OPENS_S + SALE_LASTS_S] = np.diff(edges)
    return arrivals
