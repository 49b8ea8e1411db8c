"""`labapp bench daemon`: how close the daemon comes to a plain boto3 loop, latency, and start-up time."""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from labapp.runtime.ports import free_port, port_is_free
from labapp.runtime.process import ChildProcess
from labapp.settings import HOST
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import ensure_queues, send_messages
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.options import LAB_PROFILE

WAVE = 100  # moto's receive slows with depth, so both contenders drain identical waves of this size


def _waves(sqs: SqsClient, url: str, total: int, drain: Callable[[int], None]) -> float:
    """Send `total` messages in waves, drain each wave with `drain`, return messages per second."""
    busy = 0.0
    for start in range(0, total, WAVE):
        size = min(WAVE, total - start)
        send_messages(sqs, url, (f'{{"n": {start + i}}}' for i in range(size)))
        began = time.perf_counter()
        drain(size)
        busy += time.perf_counter() - began
    return total / busy


def raw_ceiling(sqs: SqsClient, url: str, total: int) -> float:
    """Drain with the simplest possible consumer: receive(10) then delete_message_batch."""

    def drain(size: int) -> None:
        done = 0
        while done < size:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                done += len(messages)

    return _waves(sqs, url, total, drain)


def daemon_end_to_end(sqs: SqsClient, url: str, http_url: str, total: int) -> float:
    """Drain with the daemon (HttpConnections 10) POSTing to a no-op app."""
    daemon = Daemon(
        sqs, LAB_PROFILE.replace(HttpConnections=10), queue_url=url, http_url=http_url, wait_time_seconds=2
    )
    deleted = threading.Semaphore(0)
    daemon.subscribe(lambda event: deleted.release() if event.kind == "deleted" else None)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()

    def drain(size: int) -> None:
        for _ in range(size):
            if not deleted.acquire(timeout=60):
                raise RuntimeError("the daemon stopped deleting messages")

    try:
        return _waves(sqs, url, total, drain)
    finally:
        stop.set()
        thread.join()
        daemon.close()


def idle_latency(sqs: SqsClient, url: str, http_url: str, samples: int = 50) -> list[float]:
    """Send one message at a time to an idle daemon; return send-to-POST seconds for each."""
    daemon = Daemon(sqs, LAB_PROFILE, queue_url=url, http_url=http_url, wait_time_seconds=2)
    posted: dict[str, float] = {}
    daemon.subscribe(
        lambda e: posted.setdefault(e.message_id or "", time.perf_counter()) if e.kind == "posted" else None
    )
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()
    latencies = []
    try:
        time.sleep(0.3)  # let the daemon reach its long poll, as an idle daemon would be
        for i in range(samples):
            sent = time.perf_counter()
            message_id = sqs.send_message(QueueUrl=url, MessageBody=f'{{"probe": {i}}}')["MessageId"]
            deadline = sent + 10
            while message_id not in posted and time.perf_counter() < deadline:
                time.sleep(0.001)
            latencies.append(posted.get(message_id, deadline) - sent)
            daemon.wait_idle(5)
            time.sleep(0.05)
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


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print a short report."""
    parser = argparse.ArgumentParser(prog="labapp bench daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    total = parser.parse_args(argv).messages
    # SQS and the worker app are other processes in real life; sharing the daemon's interpreter
    # (and its GIL) would measure Python's lock, not the daemon.
    sqs_port, http_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="labapp-bench-"))
    helpers = [
        ChildProcess.labapp("emulator", ["emulator", "--port", str(sqs_port)], logs / "emulator.log"),
        ChildProcess(
            "no-op app", [sys.executable, "-m", "labapp.bench.noop", str(http_port)], logs / "noop.log"
        ),
    ]
    try:
        for port, helper in zip((sqs_port, http_port), helpers, strict=True):
            helper.start().wait_ready(functools.partial(_listening, port), 15, f"port {port}")
        print(f"Benchmark on {os.cpu_count()} cores, {total} messages per contender, waves of {WAVE}.")
        sqs = sqs_client(f"http://{HOST}:{sqs_port}")
        queues = ensure_queues(sqs, "bench", LAB_PROFILE.MaxRetries, LAB_PROFILE.VisibilityTimeout)
        http_url = f"http://{HOST}:{http_port}"
        raw = raw_ceiling(sqs, queues.url, total)
        print(f"(a) raw boto3 receive(10) + delete_batch: {raw:8.1f} msg/s")
        daemon = daemon_end_to_end(sqs, queues.url, http_url, total)
        print(f"(b) daemon end to end, HttpConnections 10: {daemon:8.1f} msg/s")
        print(f"    ratio (b)/(a): {daemon / raw:.2f} (goal >= 0.9)")
        latencies = sorted(idle_latency(sqs, queues.url, http_url))
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        print(f"send -> POST latency at idle: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(latencies)} samples)")
    finally:
        for helper in helpers:
            helper.stop()
    took, rss = startup()
    print(f"`labapp up` to ready: {took:.2f} s (goal < 3 s), stack RSS {rss:.0f} MB")
    return 0
