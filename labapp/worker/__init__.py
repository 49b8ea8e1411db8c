"""The Flask worker: the application sqsd POSTs to, with the lab's inspector, ledger and failure switch."""

from labapp.worker.app import create_app
from labapp.worker.failures import Failures, FailureSwitch
from labapp.worker.inspector import Inspector, RawHeaderChannel, RecordedRequest
from labapp.worker.ledger import Ledger
from labapp.worker.scenarios import SCENARIOS, BadMessage, Job, parse_body, perform, read_job
from labapp.worker.state import Concurrency, WorkerState, of
from labapp.worker.views import MESSAGE_ENDPOINT

__all__ = [
    "MESSAGE_ENDPOINT",
    "SCENARIOS",
    "BadMessage",
    "Concurrency",
    "FailureSwitch",
    "Failures",
    "Inspector",
    "Job",
    "Ledger",
    "RawHeaderChannel",
    "RecordedRequest",
    "WorkerState",
    "create_app",
    "of",
    "parse_body",
    "perform",
    "read_job",
]
