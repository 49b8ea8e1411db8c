"""The combined chaos run: every fault at once, on a cycle, while messages of every kind flow."""

from __future__ import annotations

import enum
from pathlib import Path

from labapp.chaos.harness import ChaosLab
from labapp.chaos.profile import CHAOS_PROFILE, POISON
from labapp.chaos.reconcile import Report, plan_messages
from labapp.sqsd.options import SqsdOptions


class Fault(str, enum.Enum):
    """The faults of a combined run, fired in this order, again and again."""

    WORKER_KILL = "worker_kill"
    DAEMON_KILL = "daemon_kill"
    ENDPOINT_CUT = "endpoint_cut"
    DAEMON_TERM = "daemon_term"


FAULT_CYCLE = tuple(Fault)


def run_combined(
    endpoint_url: str,
    workdir: str | Path,
    n: int,
    *,
    options: SqsdOptions = CHAOS_PROFILE,
    poison_every: int = 50,
    slow_every: int = 100,
    error_rate: float = 0.05,
    faults: int = 4,
    outage_seconds: float = 4.0,
    timeout: float = 300,
    max_backlog: int = 100,
) -> tuple[Report, list[int]]:
    """Send n messages through every fault at once; return the report and the SIGTERM exit codes.

    The worker answers 503 to error_rate of the requests throughout; poison and slow messages are
    mixed in; the faults (worker SIGKILL, daemon SIGKILL, SQS outage, daemon SIGTERM, in a cycle)
    fire at evenly spaced points of progress.
    """
    plan = plan_messages(n, poison_every=poison_every, slow_every=slow_every, slow_ms=3000)
    will_apply = sum(p.kind != POISON for p in plan)
    exit_codes: list[int] = []
    with ChaosLab(endpoint_url, workdir, options, max_backlog=max_backlog) as lab:
        lab.set_failures(error_rate=error_rate, status=503)
        lab.feed(plan)
        for k in range(faults):
            lab.wait_applied(will_apply * (k + 1) // (faults + 1), timeout=timeout)
            fault = FAULT_CYCLE[k % len(FAULT_CYCLE)]
            if fault is Fault.WORKER_KILL:
                lab.kill_worker()
            elif fault is Fault.DAEMON_KILL:
                lab.kill_daemon()
            elif fault is Fault.ENDPOINT_CUT:
                lab.cut_endpoint(outage_seconds)
            else:
                exit_codes.append(lab.terminate_daemon()[0])
        report = lab.finish(plan, timeout=timeout)
    return report, exit_codes
