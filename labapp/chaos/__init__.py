"""Break the worker tier on purpose and account for every message afterwards."""

from labapp.chaos.combined import FAULT_CYCLE, Fault, run_combined
from labapp.chaos.faults import DaemonProcess, TcpProxy, WorkerProcess
from labapp.chaos.harness import ChaosLab
from labapp.chaos.profile import CHAOS_PROFILE, GOOD, POISON, SLOW, ChaosError, Kind
from labapp.chaos.reconcile import Planned, Report, plan_messages, reconcile

__all__ = [
    "CHAOS_PROFILE",
    "FAULT_CYCLE",
    "GOOD",
    "POISON",
    "SLOW",
    "ChaosError",
    "ChaosLab",
    "DaemonProcess",
    "Fault",
    "Kind",
    "Planned",
    "Report",
    "TcpProxy",
    "WorkerProcess",
    "plan_messages",
    "reconcile",
    "run_combined",
]
