"""Chaos: real worker and daemon processes under faults, and every message accounted for afterwards.

Each case sends 200 orders with unique ids through `labapp daemon` and `labapp worker`
running as child processes, injects one fault, waits until the queue is empty, and reconciles the
worker's ledger and the DLQ with what was sent. The combined case sends 1,000 through all faults
at once. moto's receive slows down with queue depth, so messages are fed in waves (at most 100
waiting or in flight); 2,400 messages go through the whole module. Run with `pytest -s` to see
each report.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labapp.chaos import ChaosLab, run_combined
from labapp.chaos.faults import TcpProxy
from labapp.chaos.profile import CHAOS_PROFILE
from labapp.chaos.reconcile import Report, plan_messages, reconcile
from labapp.runtime.emulator import Emulator
from labapp.sqs.client import sqs_client

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(emulator: Emulator, tmp_path: Path) -> Iterator[Any]:
    """Start ChaosLabs on the shared endpoint; every process they started is reaped afterwards."""
    labs: list[ChaosLab] = []

    def start(**kwargs: Any) -> ChaosLab:
        chaos = ChaosLab(emulator.url, tmp_path / f"lab{len(labs)}", **kwargs)
        labs.append(chaos)
        return chaos.start()

    yield start
    for chaos in labs:
        chaos.close()
        for child in chaos.children:
            assert child.returncode is not None, f"{child.name} (pid {child.pid}) was left running"
        assert chaos.proxy is None or chaos.proxy.is_cut


def show(title: str, report: Report) -> None:
    print(f"\n== chaos: {title}\n{report.summary()}")


def assert_accounted(report: Report) -> None:
    assert report.missing == 0, report.summary()
    assert report.applied_more_than_once == 0, report.summary()
    assert report.still_queued == 0, report.summary()
    assert report.ok, report.summary()


# -- the reconciliation itself ---------------------------------------------------------------------
def test_reconcile_names_lost_double_and_misplaced_messages() -> None:
    plan = plan_messages(6, run_id="r", poison_every=3)
    good, poison = [p for p in plan if p.kind == "good"], [p for p in plan if p.kind == "poison"]
    applications = {good[0].business_id: 1, good[1].business_id: 2, good[2].business_id: 1}
    deliveries = {good[0].business_id: 3, good[1].business_id: 2, good[2].business_id: 1}
    dlq = [(poison[0].body, 3), (poison[1].body, 2), (good[2].body, 3)]
    report = reconcile(plan, applications, deliveries, dlq, max_retries=3)
    assert (report.sent, report.applied_once, report.applied_more_than_once) == (6, 2, 1)
    assert (report.missing, report.in_dlq, report.duplicate_deliveries) == (1, 3, 3)
    assert report.receives_before_dlq == {3: 2, 2: 1}
    problems = " | ".join(report.unexpected)
    assert "applied 2 times" in problems
    assert "never applied" in problems
    assert "after 2 receives, not MaxRetries=3" in problems
    assert "a healthy message ended in the DLQ" in problems
    assert not report.ok


def test_proxy_cut_refuses_connections_and_restore_reopens_the_same_port(emulator: Emulator) -> None:
    proxy = TcpProxy(int(emulator.url.rsplit(":", 1)[1])).start()
    try:
        port = proxy.port
        client = sqs_client(proxy.url)
        client.list_queues()
        proxy.cut()
        with pytest.raises(requests.ConnectionError):
            requests.get(proxy.url, timeout=1)
        proxy.restore()
        assert proxy.port == port
        client.list_queues()
    finally:
        proxy.close()


# -- one fault at a time ---------------------------------------------------------------------------
def test_worker_5xx_at_a_rate(lab: Any) -> None:
    # A 25% error rate with MaxRetries=10 (the AWS default): a healthy message failing ten times
    # in a row (p ~ 1e-6) is the only way it could reach the DLQ.
    chaos = lab(options=CHAOS_PROFILE.replace(MaxRetries=10))
    plan = plan_messages(200)
    chaos.set_failures(error_rate=0.25, status=500)
    chaos.feed(plan)
    report = chaos.finish(plan, timeout=90)
    show("worker answers 500 to 25% of requests", report)
    assert_accounted(report)
    assert report.applied_once == 200 and report.in_dlq == 0
    assert chaos.daemon is not None and chaos.daemon.starts == 1


def test_worker_slower_than_inactivity_timeout(lab: Any) -> None:
    # Every 20th message is a thumbnail whose work takes 3 s against InactivityTimeout=2 s: every
    # delivery times out although the worker finishes the work. The ledger absorbs the redeliveries
    # (one effect, MaxRetries deliveries) and after MaxRetries receives the message goes to the DLQ.
    options = CHAOS_PROFILE.replace(MaxRetries=3)
    chaos = lab(options=options)
    plan = plan_messages(200, slow_every=20, slow_ms=3000)
    chaos.feed(plan)
    report = chaos.finish(plan, timeout=90)
    show("10 of 200 messages take 3 s, InactivityTimeout 2 s", report)
    assert_accounted(report)
    assert report.slow == report.slow_in_dlq == 10
    assert report.receives_before_dlq == {3: 10}
    deliveries = chaos.ledger.deliveries()
    assert {deliveries[p.business_id] for p in plan if p.kind == "slow"} == {3}
    assert report.duplicate_deliveries >= 20


def test_worker_killed_and_restarted(lab: Any) -> None:
    chaos = lab(options=CHAOS_PROFILE)
    plan = plan_messages(200, work_ms=300)
    chaos.feed(plan)
    chaos.wait_applied(100)
    chaos.kill_worker(down_seconds=1.0)
    report = chaos.finish(plan, timeout=90)
    show("worker SIGKILLed mid-request, restarted 1 s later", report)
    assert_accounted(report)
    assert report.applied_once == 200
    assert "with 0 requests" not in report.faults[0]
    assert chaos.worker is not None and chaos.worker.starts == 2
    assert chaos.daemon is not None and chaos.daemon.starts == 1


def test_daemon_killed_mid_batch_and_restarted(lab: Any) -> None:
    # Messages the killed daemon held come back after VisibilityTimeout (5 s) and go to the new one.
    chaos = lab(options=CHAOS_PROFILE)
    plan = plan_messages(200, work_ms=300)
    chaos.feed(plan)
    chaos.wait_applied(100)
    chaos.kill_daemon()
    report = chaos.finish(plan, timeout=90)
    show("daemon SIGKILLed mid-batch, restarted", report)
    assert_accounted(report)
    assert report.applied_once == 200
    assert "with 0 POSTs" not in report.faults[0]
    # The worker finished what the dead daemon had posted; SQS delivered those again: at least once.
    assert report.duplicate_deliveries > 0


def test_daemon_sigterm_drains_in_flight_work(lab: Any) -> None:
    chaos = lab(options=CHAOS_PROFILE)
    plan = plan_messages(200, work_ms=300)
    chaos.feed(plan)
    chaos.wait_applied(100)
    code, left_in_flight, took = chaos.terminate_daemon()
    report = chaos.finish(plan, timeout=90)
    show("daemon SIGTERMed mid-batch, restarted", report)
    assert code == 0
    assert "with 0 POSTs" not in report.faults[0]
    # A drained daemon deleted what it finished and handed back what it had not started: nothing
    # waits out a VisibilityTimeout, and no message is delivered twice.
    assert left_in_flight == 0
    assert took < chaos.daemon.drain_timeout
    assert "stopped cleanly" in chaos.daemon.output(since_start=False)
    assert_accounted(report)
    assert report.duplicate_deliveries == 0
    assert report.applied_once == 200


def test_sqs_unreachable_daemon_backs_off_and_resumes(lab: Any) -> None:
    outage = 4.0
    chaos = lab(options=CHAOS_PROFILE)
    plan = plan_messages(200, work_ms=20)
    chaos.feed(plan)
    chaos.wait_applied(100)
    errors = chaos.cut_endpoint(outage)
    restored = time.monotonic()
    applied = chaos.applied()
    # Receive errors back off 0.5 s, 1 s, 2 s, ...: after a 4 s outage the next receive comes at
    # most ~4 s after the endpoint is back, whatever failed in between.
    chaos.wait_applied(applied + 20, timeout=outage + 6)
    resumed = time.monotonic() - restored
    report = chaos.finish(plan, timeout=90)
    show(f"SQS unreachable for {outage:.0f} s, resumed {resumed:.1f} s after", report)
    assert errors > 0, "the daemon never noticed the outage"
    assert chaos.daemon is not None and chaos.daemon.starts == 1 and chaos.daemon.alive
    assert_accounted(report)
    assert report.applied_once == 200


def test_poison_reaches_the_dlq_after_exactly_max_retries(lab: Any) -> None:
    options = CHAOS_PROFILE.replace(MaxRetries=3, ErrorVisibilityTimeout=1)
    chaos = lab(options=options)
    plan = plan_messages(200, poison_every=10)
    chaos.feed(plan)
    report = chaos.finish(plan, timeout=90)
    show("20 poison orders (amount < 0) among 200", report)
    assert_accounted(report)
    assert report.poison == report.poison_in_dlq == 20
    assert report.receives_before_dlq == {3: 20}
    assert report.applied_once == 180 and report.good_in_dlq == 0
    # Never before MaxRetries: the worker saw each poison message exactly three times.
    posts = chaos.posts_per_message()
    assert len(posts) == 20 and set(posts.values()) == {3}


def test_combined_faults_on_1000_messages(tmp_path: Path) -> None:
    # Gets its own endpoint so the DLQs of earlier cases do not slow moto down.
    with Emulator(port=0) as emulator:
        report, exit_codes = run_combined(emulator.url, tmp_path, 1000, timeout=150)
    show("1,000 messages: 5% 503s, poison, slow, worker kill, daemon kill, SQS outage, SIGTERM", report)
    assert_accounted(report)
    assert report.sent == 1000
    assert report.poison_in_dlq == report.poison == 20
    assert report.slow_in_dlq == report.slow == 10
    assert report.applied_once == 980
    assert exit_codes == [0]
    assert len([f for f in report.faults if "SIGKILL" in f or "SIGTERM" in f or "unreachable" in f]) == 4


def test_every_started_process_is_reaped(emulator: Emulator, tmp_path: Path) -> None:
    chaos = ChaosLab(emulator.url, tmp_path)
    with chaos:
        pids = [child.pid for child in chaos.children]
        assert all(child.alive for child in chaos.children)
    assert all(child.returncode is not None for child in chaos.children)
    assert len(pids) == 2 and chaos.proxy is not None and chaos.proxy.is_cut
