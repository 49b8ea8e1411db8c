"""Send 10,000 orders through every fault at once and account for each one.

Run with `labapp bench chaos [--messages N] [--faults K]`. Starts moto in
this process, the worker and the daemon as child processes, and then, while a 5% share of requests
gets a 503 and poison (2%) and too-slow (1%) messages are mixed in, cycles through worker SIGKILL,
daemon SIGKILL, a 4 s SQS outage and daemon SIGTERM at evenly spaced points of progress. Prints the
reconciliation: applied once, applied twice, duplicate deliveries, DLQ, lost. Exits 1 unless every
message is accounted for.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from labapp.chaos import run_combined
from labapp.runtime.emulator import Emulator


def main(argv: list[str] | None = None) -> int:
    """Run the combined chaos case once and print its report."""
    parser = argparse.ArgumentParser(prog="labapp bench chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--faults", type=int, default=8, help="faults spread over the run (4 per cycle)")
    parser.add_argument("--backlog", type=int, default=100, help="most messages waiting or in flight")
    parser.add_argument("--verbose", action="store_true", help="log each fault as it happens")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    began = time.perf_counter()
    with Emulator(port=0) as emulator, tempfile.TemporaryDirectory(prefix="chaos-10k-") as workdir:
        report, exit_codes = run_combined(
            emulator.url,
            workdir,
            args.messages,
            faults=args.faults,
            timeout=max(300, args.messages / 10),
            max_backlog=args.backlog,
        )
    took = time.perf_counter() - began
    print(f"chaos: {args.messages:,} messages, {args.faults} faults")
    print(report.summary())
    print(f"{'SIGTERM exit codes':>24}: {exit_codes}")
    print(f"{'wall time':>24}: {took:.0f}s ({args.messages / took:.0f} messages/s)")
    return 0 if report.ok and all(code == 0 for code in exit_codes) else 1
