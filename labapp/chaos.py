"""Break the worker tier on purpose and account for every message afterwards.

The worker and the daemon run as real child processes (`python -m labapp worker|daemon`), so they
can be killed with SIGKILL, stopped with SIGTERM and started again. The daemon reaches the SQS
endpoint through a small TCP proxy that can be cut and restored: moto keeps its queues inside the
process that serves them, so stopping the endpoint itself would lose every message.

After the faults, `ChaosLab.finish` waits until the queue is empty and reconciles what was sent
against the worker's idempotency ledger and the dead-letter queue: every business id must be
applied exactly once in effect, or sit in the DLQ when it could never succeed. Nothing may be missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlparse

import requests
from botocore.exceptions import BotoCoreError, ClientError

from labapp.config import SqsdOptions
from labapp.emulator import HOST
from labapp.errors import LabError
from labapp.ledger import Ledger
from labapp.queues import QueuePair, SqsClient, depth, ensure_queues, send_messages, sqs_client

log = logging.getLogger("labapp.chaos")

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


def free_port(host: str = HOST) -> int:
    """Return a TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll condition until it holds; raise ChaosError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- the messages --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Planned:
    """One message to send, its business id, and what should become of it."""

    business_id: str
    kind: str  # good: applied once; poison: 400 every time, DLQ; slow: times out every time, DLQ
    body: str


def plan_messages(
    n: int,
    *,
    run_id: str | None = None,
    poison_every: int = 0,
    slow_every: int = 0,
    slow_ms: int = 3000,
    work_ms: int = 0,
) -> list[Planned]:
    """Plan n orders with unique ids; every poison_every-th has amount < 0, every slow_every-th is slow.

    A slow message is a thumbnail whose work_ms exceeds the daemon's InactivityTimeout, so every
    delivery times out although the worker finishes the work: it is applied once, then goes to the DLQ.
    """
    run_id = run_id or uuid.uuid4().hex[:8]
    plan = []
    for i in range(n):
        if poison_every and i % poison_every == poison_every - 1:
            order_id = f"{run_id}-{i:06d}"
            body = {"type": "order", "order_id": order_id, "amount": -1}
            plan.append(Planned(f"order:{order_id}", POISON, json.dumps(body)))
        elif slow_every and i % slow_every == slow_every // 2:
            image_id = f"{run_id}-{i:06d}"
            body = {"type": "thumbnail", "image_id": image_id, "sizes": [128], "work_ms": slow_ms}
            plan.append(Planned(f"thumbnail:{image_id}:128", SLOW, json.dumps(body)))
        else:
            order_id = f"{run_id}-{i:06d}"
            body = {"type": "order", "order_id": order_id, "amount": i % 97 + 0.5, "work_ms": work_ms}
            plan.append(Planned(f"order:{order_id}", GOOD, json.dumps(body)))
    return plan


# -- the report ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Report:
    """What became of every message of one chaos run."""

    sent: int
    applied_once: int  # effects applied exactly once (ledger applications == 1)
    applied_more_than_once: int  # effects applied twice or more: idempotency broken
    duplicate_deliveries: int  # POSTs that carried an id already delivered (absorbed by the ledger)
    in_dlq: int
    missing: int  # neither applied nor in the DLQ: lost
    still_queued: int  # messages left in the worker queue when the run ended
    poison: int = 0
    poison_in_dlq: int = 0
    slow: int = 0
    slow_in_dlq: int = 0
    good_in_dlq: int = 0
    receives_before_dlq: dict[int, int] = dataclasses.field(default_factory=dict)
    faults: tuple[str, ...] = ()
    seconds: float = 0.0
    unexpected: tuple[str, ...] = ()  # the first few ids whose outcome differs from their plan

    @property
    def ok(self) -> bool:
        """True when nothing is lost, nothing applied twice, and every id ended as planned."""
        return (
            self.missing == 0
            and self.applied_more_than_once == 0
            and self.still_queued == 0
            and not self.unexpected
        )

    def summary(self) -> str:
        """Return the figures as a small table, one per line, then the faults one per line."""
        dlq = (
            f"{self.in_dlq} (poison {self.poison_in_dlq}/{self.poison}, slow {self.slow_in_dlq}/{self.slow}, "
            f"healthy {self.good_in_dlq})"
        )
        rows = [
            ("messages sent", self.sent),
            ("applied exactly once", self.applied_once),
            ("applied more than once", self.applied_more_than_once),
            ("duplicate deliveries", self.duplicate_deliveries),
            ("in DLQ", dlq),
            ("receives before DLQ", dict(sorted(self.receives_before_dlq.items())) or "-"),
            ("missing (lost)", self.missing),
            ("left in queue", self.still_queued),
            ("seconds", f"{self.seconds:.1f}"),
            ("verdict", "OK" if self.ok else f"NOT OK {list(self.unexpected)}"),
        ]
        lines = [f"{name:>24}: {value}" for name, value in rows]
        lines += [f"{'fault' if i == 0 else '':>24}  {fault}" for i, fault in enumerate(self.faults)]
        return "\n".join(lines)


def reconcile(
    plan: Sequence[Planned],
    applications: dict[str, int],
    deliveries: dict[str, int],
    dlq: Sequence[tuple[str, int]],
    max_retries: int,
    *,
    still_queued: int = 0,
    faults: Sequence[str] = (),
    seconds: float = 0.0,
) -> Report:
    """Compare the plan with the ledger and the DLQ (body, receives before DLQ) and count outcomes."""
    by_body = {p.body: p for p in plan}
    in_dlq: dict[str, int] = {}
    unexpected: list[str] = []
    for body, receives in dlq:
        planned = by_body.get(body)
        if planned is None:
            unexpected.append(f"unknown DLQ body {body[:60]!r}")
            continue
        if planned.business_id in in_dlq:
            unexpected.append(f"{planned.business_id} twice in the DLQ")
        in_dlq[planned.business_id] = receives
    counts = Counter[str]()
    duplicates = 0
    for p in plan:
        applied = applications.get(p.business_id, 0)
        duplicates += max(0, deliveries.get(p.business_id, 0) - 1)
        counts["sent"] += 1
        counts[p.kind] += 1
        counts["applied_once"] += applied == 1
        counts["applied_more"] += applied > 1
        dead = p.business_id in in_dlq
        counts["in_dlq"] += dead
        counts[f"{p.kind}_in_dlq"] += dead
        counts["missing"] += applied == 0 and not dead
        problem = _outcome_problem(p, applied, in_dlq.get(p.business_id), max_retries)
        if problem:
            unexpected.append(f"{p.business_id}: {problem}")
    return Report(
        sent=counts["sent"],
        applied_once=counts["applied_once"],
        applied_more_than_once=counts["applied_more"],
        duplicate_deliveries=duplicates,
        in_dlq=counts["in_dlq"],
        missing=counts["missing"],
        still_queued=still_queued,
        poison=counts[POISON],
        poison_in_dlq=counts[f"{POISON}_in_dlq"],
        slow=counts[SLOW],
        slow_in_dlq=counts[f"{SLOW}_in_dlq"],
        good_in_dlq=counts[f"{GOOD}_in_dlq"],
        receives_before_dlq=dict(Counter(in_dlq.values())),
        faults=tuple(faults),
        seconds=seconds,
        unexpected=tuple(unexpected[:10]),
    )


def _outcome_problem(planned: Planned, applied: int, dlq_receives: int | None, max_retries: int) -> str:
    if applied > 1:
        return f"applied {applied} times"
    if dlq_receives is not None and dlq_receives != max_retries:
        return f"reached the DLQ after {dlq_receives} receives, not MaxRetries={max_retries}"
    if planned.kind == GOOD and dlq_receives is not None:
        return "a healthy message ended in the DLQ"
    if planned.kind == GOOD and applied != 1:
        return "never applied"
    if planned.kind == POISON and (applied or dlq_receives is None):
        return "poison was applied" if applied else "poison is not in the DLQ"
    if planned.kind == SLOW and (applied != 1 or dlq_receives is None):
        return "slow message not applied" if applied != 1 else "slow message is not in the DLQ"
    return ""


# -- child processes -----------------------------------------------------------------------------
class Child:
    """One `python -m labapp ...` child process with its output appended to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "labapp", *argv]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    def start(self) -> Child:
        """Start the process (again); raise if it is still running."""
        if self.alive:
            raise ChaosError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- kept open for the child's lifetime
        self._log_offset = self._log.tell()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        """True while the process runs (this also reaps it once it has exited)."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def output(self, since_start: bool = True) -> str:
        """Return what the process wrote (since its last start, or in all its runs)."""
        with open(self.log_path, "rb") as file:
            file.seek(self._log_offset if since_start else 0)
            return file.read().decode("utf-8", errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Wait until the process, since its last start, printed text; fail if it exits first."""

        def printed() -> bool:
            if not self.alive:
                tail = self.output()[-600:]
                raise ChaosError(f"{self.name} exited with {self.returncode} while starting: {tail}")
            return text in self.output()

        wait_until(printed, timeout, f"{self.name} to print {text!r}", interval=0.05)

    def kill(self) -> int | None:
        """SIGKILL the process and reap it; return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(timeout=10)
        self._close_log()
        return code

    def terminate(self, timeout: float) -> int:
        """SIGTERM the process and wait for it; SIGKILL it and raise if it does not exit in time."""
        if self.process is None:
            raise ChaosError(f"{self.name} was never started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ChaosError(f"{self.name} did not exit within {timeout:.0f}s of SIGTERM") from None
        self._close_log()
        return code

    def stop(self, timeout: float = 10) -> None:
        """End the process whatever its state: SIGTERM, then SIGKILL; always reap it."""
        if self.alive:
            with contextlib.suppress(ChaosError):
                self.terminate(timeout)
        self.kill()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class WorkerProcess(Child):
    """`labapp worker` on a fixed loopback port, so a restarted worker gets the same URL."""

    def __init__(self, ledger_path: Path, log_path: Path, port: int | None = None, threads: int = 32) -> None:
        self.port = port or free_port()
        self.ledger_path = ledger_path
        argv = ["worker", "--port", str(self.port), "--ledger", str(ledger_path), "--threads", str(threads)]
        super().__init__("worker", argv, log_path)
        self.failures: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 20) -> WorkerProcess:
        """Start, wait until /_lab/health answers, and re-apply the injected failures."""
        super().start()
        wait_until(self._answers, timeout, "the worker to answer")
        if self.failures:
            self._put_failures(self.failures)
        return self

    def _answers(self) -> bool:
        if not self.alive:
            raise ChaosError(f"worker exited with {self.returncode} while starting: {self.output()[-600:]}")
        return self.health() is not None

    def health(self) -> dict[str, Any] | None:
        """Return the worker's /_lab/health answer, or None when it does not answer."""
        try:
            reply = requests.get(f"{self.url}/_lab/health", timeout=2)
            return dict(reply.json()) if reply.ok else None
        except (requests.RequestException, ValueError):
            return None

    def busy(self) -> int | None:
        """Return how many requests the worker is handling now, or None when it does not answer."""
        health = self.health()
        return None if health is None else int(health["concurrency"]["now"])

    def set_failures(self, **failures: Any) -> None:
        """Inject failures now and after every restart (fields of labapp.failures.Failures)."""
        self.failures.update(failures)
        self._put_failures(self.failures)

    def _put_failures(self, failures: dict[str, Any]) -> None:
        reply = requests.put(f"{self.url}/_lab/failures", json=failures, timeout=5)
        if not reply.ok:
            raise ChaosError(f"the worker refused failures {failures}: {reply.text.strip()}")


class DaemonProcess(Child):
    """`labapp daemon` polling one queue through one endpoint URL."""

    def __init__(
        self,
        endpoint_url: str,
        queue_url: str,
        http_url: str,
        options: SqsdOptions,
        log_path: Path,
        wait_time_seconds: int = 1,
    ) -> None:
        argv = ["daemon", "--endpoint-url", endpoint_url, "--queue-url", queue_url, "--http-url", http_url]
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if value is not None and field.name != "WorkerQueueURL":
                argv += ["--option", f"{field.name}={value}"]
        argv += ["--wait-time-seconds", str(wait_time_seconds)]
        super().__init__("daemon", argv, log_path)
        self.options = options
        self.wait_time_seconds = wait_time_seconds

    def start(self, timeout: float = 20) -> DaemonProcess:
        """Start and wait until the daemon says it is polling."""
        super().start()
        self.wait_for_output("sqsd: polling", timeout)
        return self

    @property
    def drain_timeout(self) -> float:
        """Longest a SIGTERM may take: the current receive, then the slowest in-flight POST."""
        return self.wait_time_seconds + self.options.ConnectTimeout + self.options.InactivityTimeout + 10


# -- the endpoint cutter -------------------------------------------------------------------------
class TcpProxy:
    """Forward TCP connections from a loopback port to target; cut() makes the target unreachable.

    While cut, the port is closed (connections are refused) and every open connection is reset,
    which is what a client sees when an endpoint goes away; restore() listens on the same port again.
    """

    def __init__(self, target_port: int, target_host: str = HOST, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.connections = 0
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def start(self) -> TcpProxy:
        """Listen (again, on the same port once it is known) and forward every connection."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), name=f"proxy-{self.port}")
        self._acceptor.daemon = True
        self._acceptor.start()
        return self

    restore = start

    def cut(self) -> None:
        """Stop listening and reset every open connection."""
        self._accepting.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # the other side went away or the proxy was cut: close both ends below
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)


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


class ChaosLab:
    """A fresh queue pair, a worker process and a daemon process (through a cuttable proxy)."""

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

    def __enter__(self) -> ChaosLab:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def children(self) -> list[Child]:
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = worker.busy() or 0
            if busy:
                return busy
            time.sleep(0.02)
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
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            if self.feeder is not None and self.feeder.error is not None:
                raise ChaosError(f"feeding failed: {self.feeder.error}")
            d = depth(self.sqs, queues)
            idle = (
                (self.feeder is None or self.feeder.done)
                and d.visible + d.in_flight + d.delayed == 0
                and worker.busy() == 0
            )
            quiet = quiet + 1 if idle else 0
            if quiet >= 3:
                return True
            time.sleep(0.2)
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


# -- the combined run ----------------------------------------------------------------------------
FAULT_CYCLE = ("worker_kill", "daemon_kill", "endpoint_cut", "daemon_term")


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
            if fault == "worker_kill":
                lab.kill_worker()
            elif fault == "daemon_kill":
                lab.kill_daemon()
            elif fault == "endpoint_cut":
                lab.cut_endpoint(outage_seconds)
            else:
                exit_codes.append(lab.terminate_daemon()[0])
        report = lab.finish(plan, timeout=timeout)
    return report, exit_codes
