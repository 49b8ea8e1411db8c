"""Benchmarks, not timed tests: `labapp bench [NAME ...]` (or `make bench`) runs them and prints figures."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

#: Each benchmark and what it measures; `labapp bench NAME [ARGS]` runs one with its own options.
BENCHMARKS = {
    "daemon": "the daemon against a plain boto3 loop, idle latency, start-up time",
    "simulate": "the autoscaling simulator on a day at one-second ticks",
    "fleet": "how closely a live local fleet follows the simulator",
    "chaos": "10,000 messages through every fault at once, each accounted for",
}


def run(names: Sequence[str], argv: Sequence[str] = ()) -> int:
    """Run the named benchmarks (all when none is named) and return the worst exit status."""
    worst = 0
    for name in names or list(BENCHMARKS):
        print(f"== {name}: {BENCHMARKS[name]}", flush=True)
        module = importlib.import_module(f"labapp.bench.{name}")
        worst = max(worst, int(module.main(list(argv) if names else [])))
    return worst
