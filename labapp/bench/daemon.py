"""`labapp bench daemon`: the daemon beside a plain boto3 loop on each backend, its CPU, its scaling, its latency.

One run prints, side by side: messages per second and CPU milliseconds per message for the daemon
(HttpConnections 10, a no-op app) and for the simplest consumer (receive(10) then
delete_message_batch), on the embedded moto endpoint and on LocalStack when it is installed, at
queue depths 300 and 2,000; the HttpConnections sweep (1, 10, 50) against an app that takes
50 ms; the idle send-to-POST latency; and the time `labapp up` takes.

SQS and the app run in processes of their own, so the figures are the daemon's and not Python's
lock between threads. Contenders take turns, and wall-time figures are medians of three.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from labapp.runtime.ports import free_port, port_is_free
from labapp.runtime.process import ChildProcess
from labapp.runtime.wait import wait_until
from labapp.settings import HOST
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import send_messages
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.options import SqsdOptions

DEPTHS = (300, 2000)
REPEATS = 3
DRAIN_TIMEOUT_S = 600  # far beyond any drain measured; a stalled daemon ends the run, not the machine
SWEEP = (1, 10, 50)
SLOW_APP_MS = 50
LATENCY_SAMPLES = 30
BENCH_OPTIONS = SqsdOptions(VisibilityTimeout=60, ErrorVisibilityTimeout=2, InactivityTimeout=30)


@dataclasses.dataclass(frozen=True)
class Figure:
    """One contender's run: messages per second and process CPU per message."""

    rate: float
    cpu_ms: float


def _median(runs: list[Figure]) -> Figure:
    return Figure(statistics.median(r.rate for r in runs), statistics.median(r.cpu_ms for r in runs))


def _queue(sqs: SqsClient, depth: int) -> str:
    url = str(sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:10]}")["QueueUrl"])
    _top_up(sqs, url, depth)
    return url


def _top_up(sqs: SqsClient, url: str, depth: int) -> None:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    have = sum(int(attributes.get(name, 0)) for name in names)
    send_messages(sqs, url, (f'{{"n": {i}}}' for i in range(max(0, depth - have))))


def _measured(drain: Callable[[], int]) -> Figure:
    began, cpu = time.perf_counter(), time.process_time()
    count = drain()
    took, cpu_took = time.perf_counter() - began, time.process_time() - cpu
    return Figure(count / took, cpu_took * 1000 / count)


def plain_loop(sqs: SqsClient, url: str, count: int) -> Figure:
    """Drain `count` messages with receive(10) then delete_message_batch, nothing else."""

    def drain() -> int:
        done = 0
        while done < count:
            reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = reply.get("Messages", [])
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                done += len(messages)
        return done

    return _measured(drain)


def daemon_drain(sqs: SqsClient, url: str, http_url: str, count: int, connections: int = 10) -> Figure:
    """Drain `count` messages with the daemon POSTing to `http_url`; its set-up is not measured."""
    options = BENCH_OPTIONS.replace(HttpConnections=connections)
    daemon = Daemon(sqs, options, queue_url=url, http_url=http_url, wait_time_seconds=1)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), name="bench-daemon")

    def drained() -> bool:
        if daemon.counts["failed"]:
            raise RuntimeError(f"the daemon stopped deleting messages: {daemon.counts}")
        return daemon.counts["deleted"] >= count

    def drain() -> int:
        thread.start()
        wait_until(drained, DRAIN_TIMEOUT_S, "the daemon to delete every message", interval=0.01)
        return int(daemon.counts["deleted"])

    try:
        return _measured(drain)
    finally:
        stop.set()
        thread.join()
        daemon.close()


def idle_latency(sqs: SqsClient, url: str, http_url: str, samples: int = LATENCY_SAMPLES) -> list[float]:
    """Send one message at a time to an idle daemon in its 20 s long poll; return send-to-POST seconds."""
    daemon = Daemon(sqs, BENCH_OPTIONS, queue_url=url, http_url=http_url, wait_time_seconds=20)
    posted: dict[str, float] = {}
    arrived = threading.Condition()

    def note(event: object) -> None:
        if getattr(event, "kind", None) == "posted":
            with arrived:
                posted.setdefault(getattr(event, "message_id", "") or "", time.perf_counter())
                arrived.notify_all()

    daemon.subscribe(note)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()
    latencies = []
    try:
        time.sleep(0.5)  # let the daemon reach its long poll, as an idle daemon would be
        for i in range(samples):
            sent = time.perf_counter()
            message_id = sqs.send_message(QueueUrl=url, MessageBody=f'{{"probe": {i}}}')["MessageId"]
            with arrived:
                arrived.wait_for(functools.partial(posted.__contains__, message_id), timeout=10)
            latencies.append(posted.get(message_id, sent + 10) - sent)
            daemon.wait_idle(5)
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
        daemon.close()
    return latencies


def startup() -> tuple[float, float]:
    """Time `labapp up` to ready in a private LAB_HOME and return (seconds, stack RSS in MB)."""
    free_endpoint, free_worker = free_port(), free_port()
    env = dict(
        os.environ,
        LAB_HOME=tempfile.mkdtemp(prefix="labapp-bench-"),
        LAB_ENDPOINT_URL=f"http://127.0.0.1:{free_endpoint}",
    )
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "labapp", "up", "--worker-port", str(free_worker)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    took = time.perf_counter() - began
    with open(os.path.join(env["LAB_HOME"], "stack.json")) as file:
        state = json.load(file)
    rss_kb = 0
    with open(f"/proc/{state['pid']}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    subprocess.run([sys.executable, "-m", "labapp", "down"], env=env, check=True, stdout=subprocess.DEVNULL)
    return took, rss_kb / 1024


def _listening(port: int) -> bool:
    return not port_is_free(port)


def _app(stack: ExitStack, logs: Path, latency_ms: int) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "labapp.bench.noop", str(port), str(latency_ms)]
    app = ChildProcess(f"app ({latency_ms} ms)", argv, logs / f"app-{latency_ms}ms.log")
    stack.callback(app.stop)
    app.start().wait_ready(functools.partial(_listening, port), 15, f"port {port}")
    return f"http://{HOST}:{port}"


def _backends(stack: ExitStack, logs: Path, want_localstack: bool) -> Iterator[tuple[str, SqsClient]]:
    port = free_port()
    moto = ChildProcess.labapp("moto", ["emulator", "--port", str(port)], logs / "moto.log")
    stack.callback(moto.stop)
    moto.start().wait_ready(functools.partial(_listening, port), 30, f"port {port}")
    yield "moto", sqs_client(f"http://{HOST}:{port}", read_timeout=40)
    if not want_localstack:
        return
    from labapp.errors import LabError
    from labapp.runtime.localstack import LocalStack

    try:
        localstack = stack.enter_context(LocalStack(port=free_port()))
    except LabError as exc:
        print(f"(LocalStack skipped: {exc})")
        return
    yield "localstack", sqs_client(localstack.url, read_timeout=40)


def side_by_side(name: str, sqs: SqsClient, http_url: str, depth: int, repeats: int) -> dict[str, Figure]:
    """Both contenders, taking turns on one queue kept at `depth`; medians of `repeats` runs each."""
    count = depth  # the kit's moto fix keeps receive linear in depth: drain it all, as on LocalStack
    url = _queue(sqs, depth)
    runs: dict[str, list[Figure]] = {"plain loop": [], "daemon": []}
    for rep in range(repeats):
        order = ["plain loop", "daemon"] if rep % 2 == 0 else ["daemon", "plain loop"]
        for contender in order:
            _top_up(sqs, url, depth)
            if contender == "plain loop":
                runs[contender].append(plain_loop(sqs, url, count))
            else:
                runs[contender].append(daemon_drain(sqs, url, http_url, count))
    sqs.delete_queue(QueueUrl=url)
    return {contender: _median(figures) for contender, figures in runs.items()}


def sweep(sqs: SqsClient, slow_url: str, repeats: int) -> dict[int, Figure]:
    """The daemon against a 50 ms app at each HttpConnections of SWEEP; medians of `repeats`."""
    runs: dict[int, list[Figure]] = {n: [] for n in SWEEP}
    for _ in range(repeats):
        for connections in SWEEP:
            count = max(100, 20 * connections)
            url = _queue(sqs, count)
            runs[connections].append(daemon_drain(sqs, url, slow_url, count, connections))
            sqs.delete_queue(QueueUrl=url)
    return {n: _median(figures) for n, figures in runs.items()}


def _depth_growth(loops: dict[str, dict[int, Figure]]) -> str:
    """One line per backend: how much longer the plain loop took to drain the deep queue than the shallow one."""
    small, large = DEPTHS
    lines = []
    for name, by_depth in loops.items():
        took = (large / by_depth[large].rate) / (small / by_depth[small].rate)
        lines.append(
            f"depth growth, {name}: draining {large:,} took {took:.1f}x the time of {small:,} "
            f"({large / small:.1f}x the messages; linear in depth is the goal)"
        )
    return "\n".join(lines)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the report."""
    parser = argparse.ArgumentParser(prog="labapp bench daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--no-localstack", action="store_true", help="only the embedded moto endpoint")
    parser.add_argument("--no-startup", action="store_true", help="skip timing `labapp up`")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="labapp-bench-"))
    print(f"Benchmark on {os.cpu_count()} cores; medians of {args.repeats}; logs in {logs}", flush=True)
    with ExitStack() as stack:
        fast_url = _app(stack, logs, 0)
        slow_url = _app(stack, logs, SLOW_APP_MS)
        backends = list(_backends(stack, logs, not args.no_localstack))
        print(f"\n{'backend':<11}{'depth':>6}  {'contender':<12}{'msg/s':>9}{'CPU ms/msg':>12}{'ratio':>8}")
        loops: dict[str, dict[int, Figure]] = {}
        for name, sqs in backends:
            for depth in DEPTHS:
                figures = side_by_side(name, sqs, fast_url, depth, args.repeats)
                loop, daemon = figures["plain loop"], figures["daemon"]
                loops.setdefault(name, {})[depth] = loop
                for label, figure in (("plain loop", loop), ("daemon HC10", daemon)):
                    ratio = f"{figure.rate / loop.rate:8.2f}" if label != "plain loop" else ""
                    print(
                        f"{name:<11}{depth:>6}  {label:<12}{figure.rate:9.1f}{figure.cpu_ms:12.2f}{ratio}",
                        flush=True,
                    )
        print("goals: daemon >= 0.9 of the plain loop; daemon CPU <= 1.5 ms per message")
        print(_depth_growth(loops))
        name, sqs = backends[-1]
        swept = sweep(sqs, slow_url, args.repeats)
        cells = ", ".join(f"HC {n}: {f.rate:.1f} msg/s ({f.cpu_ms:.2f} ms CPU)" for n, f in swept.items())
        gain = swept[SWEEP[-1]].rate / swept[SWEEP[1]].rate
        print(f"\nHttpConnections sweep, {SLOW_APP_MS} ms app, {name}: {cells}")
        print(f"    HC {SWEEP[-1]} / HC {SWEEP[1]}: {gain:.1f}x (goal >= 4x)", flush=True)
        print()
        for name, sqs in backends:
            url = _queue(sqs, 0)
            latencies = idle_latency(sqs, url, fast_url)
            sqs.delete_queue(QueueUrl=url)
            p50, p99 = statistics.median(latencies) * 1000, _percentile(latencies, 0.99) * 1000
            print(
                f"idle send -> POST latency, {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(latencies)} samples)"
            )
    if not args.no_startup:
        took, rss = startup()
        print(f"`labapp up` to ready: {took:.2f} s (goal < 3 s), stack RSS {rss:.0f} MB")
    return 0
