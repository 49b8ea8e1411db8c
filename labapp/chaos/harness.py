"""The chaos lab: a queue pair, the worker and the daemon as child processes, faults on demand, the final count.

The worker and the daemon run as real child processes (`python -m labapp worker|daemon`), so they
can be killed with SIGKILL, stopped with SIGTERM and started again. The daemon reaches the SQS
endpoint through a small TCP proxy that can be cut and restored: moto keeps its queues inside the
process that serves them, so stopping the endpoint itself would lose every message.

After the faults, `ChaosLab.finish` waits until the queue is empty and reconciles what was sent
against the worker's idempotency ledger and the dead-letter queue: every business id must be
applied exactly once in effect, or sit in the DLQ when it could never succeed. Nothing may be missing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from labapp.chaos.faults import DaemonProcess, TcpProxy, WorkerProcess
from labapp.chaos.profile import CHAOS_PROFILE, ChaosError
from labapp.chaos.reconcile import Planned, Report, reconcile
from labapp.errors import LabError, WaitTimeout
from labapp.runtime.lifecycle import StartStop
from labapp.runtime.process import ChildProcess
from labapp.runtime.wait import wait_until
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, depth, ensure_queues, send_messages
from labapp.sqsd.options import SqsdOptions
from labapp.worker.ledger import Ledger

log = logging.getLogger("labapp.chaos")


# -- the lab under test --------------------------------------------------------------------------
class Feeder(threading.Thread):
    """Send the planned bodies in batches of ten while the worker queue holds fewer than max_backlog.

    moto's receive slows down with queue depth (~0.2 s per receive at 100 messages, >1 s at 1,000),
    so a big run is fed in waves as the daemon drains, the way producers usually trickle in.
    """

    def __init__(self, sqs: SqsClient, queues: QueuePair, bodies: Sequence[str], max_backlog: int) -> None:
        super().__init__(name="chaos-feeder", daemon=True)
        self.sqs = sqs
        self.queues = queues
        self.bodies = list(bodies)
        self.max_backlog = max_backlog
        self.sent = 0
        self.error: Exception | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for start in range(0, len(self.bodies), 10):
                while not self.stop.is_set() and self._backlog() >= self.max_backlog:
                    self.stop.wait(0.05)
                if self.stop.is_set():
                    return
                chunk = self.bodies[start : start + 10]
                send_messages(self.sqs, self.queues.url, chunk)
                self.sent += len(chunk)
        except (BotoCoreError, ClientError, LabError) as exc:
            self.error = exc
            log.error("chaos: feeding stopped after %d messages: %s", self.sent, exc)

    def _backlog(self) -> int:
        d = depth(self.sqs, self.queues)
        return d.visible + d.in_flight + d.delayed

    @property
    def done(self) -> bool:
        return self.sent == len(self.bodies)


class ChaosLab(StartStop):
    """A fresh queue pair, a worker process and a daemon process (through a cuttable proxy).

    `endpoint_url` is the SQS endpoint and `workdir` holds the ledger and logs; `options` are the
    daemon's; `queue_name` defaults to a fresh chaos-* name; `worker_threads` is the worker's
    waitress threads; `wait_time_seconds` the daemon's long poll; `max_backlog` how many messages
    the feeder keeps waiting or in flight at most.
    """

    def __init__(
        self,
        endpoint_url: str,
        workdir: str | Path,
        options: SqsdOptions = CHAOS_PROFILE,
        *,
        queue_name: str | None = None,
        worker_threads: int = 32,
        wait_time_seconds: int = 1,
        max_backlog: int = 100,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.workdir = Path(workdir)
        self.options = options
        self.queue_name = queue_name or f"chaos-{uuid.uuid4().hex[:8]}"
        self.worker_threads = worker_threads
        self.wait_time_seconds = wait_time_seconds
        self.max_backlog = max_backlog
        self.faults: list[str] = []
        self.sqs: SqsClient = None
        self.queues: QueuePair | None = None
        self.proxy: TcpProxy | None = None
        self.worker: WorkerProcess | None = None
        self.daemon: DaemonProcess | None = None
        self.ledger: Ledger | None = None
        self.feeder: Feeder | None = None
        self._started = 0.0

    # -- setting up and tearing down ------------------------------------------------------------
    def start(self) -> ChaosLab:
        """Create the queues and start the proxy, the worker and the daemon."""
        self._started = time.monotonic()
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.sqs = sqs_client(self.endpoint_url)
            self.queues = ensure_queues(
                self.sqs, self.queue_name, self.options.MaxRetries, self.options.VisibilityTimeout
            )
            target_port = urlparse(self.endpoint_url).port
            if target_port is None:
                raise ChaosError(f"the endpoint URL {self.endpoint_url} needs an explicit port")
            self.proxy = TcpProxy(target_port).start()
            ledger_path = self.workdir / f"{self.queue_name}-ledger.sqlite"
            self.worker = WorkerProcess(ledger_path, self.workdir / "worker.log", threads=self.worker_threads)
            self.worker.start()
            self.ledger = Ledger(ledger_path)
            self.daemon = DaemonProcess(
                self.proxy.url,
                self.queues.url,
                self.worker.url,
                self.options,
                self.workdir / "daemon.log",
                self.wait_time_seconds,
            )
            self.daemon.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the feeder and every process this lab started, and reap them."""
        if self.feeder is not None:
            self.feeder.stop.set()
            self.feeder.join(timeout=10)
        for child in (self.daemon, self.worker):
            if child is not None:
                child.stop()
        if self.proxy is not None:
            self.proxy.close()
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    stop = close

    @property
    def children(self) -> list[ChildProcess]:
        return [child for child in (self.worker, self.daemon) if child is not None]

    def _parts(self) -> tuple[QueuePair, WorkerProcess, DaemonProcess, TcpProxy, Ledger]:
        if not (self.queues and self.worker and self.daemon and self.proxy and self.ledger):
            raise ChaosError("the chaos lab is not started; use it as a context manager")
        return self.queues, self.worker, self.daemon, self.proxy, self.ledger

    # -- messages -------------------------------------------------------------------------------
    def feed(self, plan: Sequence[Planned]) -> Feeder:
        """Start sending the plan in the background, keeping the backlog under max_backlog."""
        queues = self._parts()[0]
        # A client of its own, so sending never queues behind the lab's depth checks for a connection.
        self.feeder = Feeder(sqs_client(self.endpoint_url), queues, [p.body for p in plan], self.max_backlog)
        self.feeder.start()
        return self.feeder

    def applied(self) -> int:
        """Return how many business ids the worker has applied so far."""
        return self._parts()[4].summary()["applied"]

    def wait_applied(self, count: int, timeout: float = 120) -> None:
        """Wait until at least count business ids are applied."""
        wait_until(lambda: self.applied() >= count, timeout, f"{count} applied messages", interval=0.1)

    def wait_busy(self, timeout: float = 10) -> int:
        """Wait until the worker is handling requests (mid-batch); return how many, 0 if none came."""
        worker = self._parts()[1]
        try:
            return wait_until(lambda: worker.busy() or 0, timeout, "the worker to be busy", interval=0.02)
        except WaitTimeout:
            return 0

    # -- faults ---------------------------------------------------------------------------------
    def note(self, fault: str) -> None:
        """Record a fault for the report."""
        at = time.monotonic() - self._started
        self.faults.append(f"{fault} at {at:.0f}s")
        log.info("chaos: %s", fault)

    def set_failures(self, **failures: Any) -> None:
        """Inject worker failures (error_rate, status, latency_ms, ...), kept across restarts."""
        self._parts()[1].set_failures(**failures)
        self.note(f"worker failures {failures}")

    def kill_worker(self, down_seconds: float = 0.5) -> None:
        """SIGKILL the worker, leave it down for a moment, and start it again on the same port."""
        worker = self._parts()[1]
        busy = self.wait_busy(timeout=5)
        code = worker.kill()
        time.sleep(down_seconds)
        started = time.monotonic()
        worker.start()
        down = down_seconds + time.monotonic() - started
        self.note(f"worker SIGKILL with {busy} requests running (exit {code}), down {down:.1f}s")

    def kill_daemon(self, down_seconds: float = 0.0) -> None:
        """SIGKILL the daemon while POSTs are in flight, then start a new one."""
        daemon = self._parts()[2]
        busy = self.wait_busy(timeout=5)
        code = daemon.kill()
        time.sleep(down_seconds)
        daemon.start()
        self.note(f"daemon SIGKILL with {busy} POSTs in flight (exit {code}), restarted")

    def terminate_daemon(self, restart: bool = True) -> tuple[int, int, float]:
        """SIGTERM the daemon mid-batch; return (exit code, messages left in flight, seconds to exit).

        A draining daemon finishes its POSTs and deletes or releases every message it holds, so
        right after it exits no message of a healthy run is in flight in SQS.
        """
        queues, _, daemon, _, _ = self._parts()
        busy = self.wait_busy(timeout=5)
        started = time.monotonic()
        code = daemon.terminate(daemon.drain_timeout)
        took = time.monotonic() - started
        left = depth(self.sqs, queues).in_flight
        self.note(
            f"daemon SIGTERM with {busy} POSTs in flight: exit {code} after {took:.1f}s, {left} left in flight"
        )
        if restart:
            daemon.start()
        return code, left, took

    def cut_endpoint(self, seconds: float) -> int:
        """Make SQS unreachable for the daemon for some seconds; return the SQS errors it logged."""
        _, _, daemon, proxy, _ = self._parts()
        before = daemon.output().count("failed:")
        proxy.cut()
        time.sleep(seconds)
        proxy.restore()
        errors = daemon.output().count("failed:") - before
        self.note(f"SQS unreachable for {seconds:.0f}s ({errors} SQS errors logged, daemon kept running)")
        return errors

    # -- the end --------------------------------------------------------------------------------
    def settle(self, timeout: float) -> bool:
        """Wait until everything is sent, the queue is empty and the worker is idle; False on timeout."""
        queues, worker, _, _, _ = self._parts()
        quiet = 0

        def settled() -> bool:
            nonlocal quiet
            if self.feeder is not None and self.feeder.error is not None:
                raise ChaosError(f"feeding failed: {self.feeder.error}")
            d = depth(self.sqs, queues)
            idle = (
                (self.feeder is None or self.feeder.done)
                and d.visible + d.in_flight + d.delayed == 0
                and worker.busy() == 0
            )
            # Three quiet looks in a row: a message between receive and POST shows in no count.
            quiet = quiet + 1 if idle else 0
            return quiet >= 3

        try:
            return wait_until(settled, timeout, "the run to settle", interval=0.2)
        except WaitTimeout:
            return False

    def drain_dlq(self) -> list[tuple[str, int]]:
        """Take every message off the DLQ; return (body, receives before it moved) for each.

        Reading a DLQ message is itself a receive, so SQS reports one more than the count at the move.
        """
        queues = self._parts()[0]
        found: list[tuple[str, int]] = []
        empty = 0
        while empty < 2:
            reply = self.sqs.receive_message(
                QueueUrl=queues.dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=600,
                WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount"],
            )
            messages = reply.get("Messages", [])
            empty = 0 if messages else empty + 1
            for message in messages:
                count = int(message["Attributes"]["ApproximateReceiveCount"])
                found.append((message["Body"], count - 1))
        return found

    def finish(self, plan: Sequence[Planned], timeout: float = 120) -> Report:
        """Wait for the run to settle, check the processes are healthy, and reconcile."""
        queues, worker, daemon, _, ledger = self._parts()
        settled = self.settle(timeout)
        for child in (worker, daemon):
            if not child.alive:
                raise ChaosError(f"{child.name} died (exit {child.returncode}): {child.output()[-600:]}")
        d = depth(self.sqs, queues)
        report = reconcile(
            plan,
            ledger.applications(),
            ledger.deliveries(),
            self.drain_dlq(),
            self.options.MaxRetries,
            still_queued=d.visible + d.in_flight + d.delayed,
            faults=self.faults + ([] if settled else [f"did not settle within {timeout:.0f}s"]),
            seconds=time.monotonic() - self._started,
        )
        log.info("chaos: report\n%s", report.summary())
        return report

    def posts_per_message(self) -> Counter[str]:
        """Count the rejected POSTs per message id in the worker's log (all its runs)."""
        worker = self._parts()[1]
        counts = Counter[str]()
        for line in worker.output(since_start=False).splitlines():
            if "worker: rejected msgid=" in line:
                counts[line.split("msgid=", 1)[1].split()[0]] += 1
        return counts
