"""Drive every widget headless, as a learner's clicks would, and check the lab's real state."""

from __future__ import annotations

import html
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import ipywidgets
import pytest

from labapp import widgets
from labapp.course.lab import Lab
from labapp.errors import EndpointError
from labapp.runtime.ports import free_port
from labapp.sqs.queues import Depth
from labapp.sqsd.post import ARTICLE_FORM_WARNING
from labapp.widgets._common import LatestWins
from labapp.widgets.composer import Composer
from labapp.widgets.dashboard import Dashboard
from labapp.widgets.dlq import SELECTED_METHOD, DlqExplorer
from labapp.widgets.injector import FailureInjector
from labapp.widgets.inspector_view import PostInspector, body_text
from labapp.widgets.tuner import ScalingTuner
from labapp.worker import state as worker_state

STRICT_PURGE = "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"
ORDER = '{"type": "order", "order_id": "W-1", "amount": 5}'


def _widget_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lab-")]


@pytest.fixture(scope="module")
def running_lab() -> Iterator[Lab]:
    """One real lab for the module, on its own emulator port (never the learner's 4566)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        # Each test starts from empty queues; SQS (and moto) allow one purge a minute per queue.
        patch.setenv(STRICT_PURGE, "false")
        lab = Lab(f"w-{uuid.uuid4().hex[:8]}").start()
        try:
            yield lab
        finally:
            lab.stop()


@pytest.fixture
def lab(running_lab: Lab) -> Iterator[Lab]:
    """The module's lab, healthy, with empty queues and a running daemon; no widget thread left after."""
    running_lab.heal()
    running_lab.sqs.purge_queue(QueueUrl=running_lab.queues.url)
    running_lab.sqs.purge_queue(QueueUrl=running_lab.queues.dlq_url)
    if running_lab.daemon is None:
        running_lab.start_daemon()
    running_lab.wait_until_idle()
    worker_state.of(running_lab.worker.app).inspector.clear()  # type: ignore[union-attr]
    yield running_lab
    running_lab.heal()
    if running_lab.daemon is None:
        running_lab.start_daemon()
    assert _widget_threads() == [], "a widget left its thread running"


def _events_since(lab: Lab, mark: int, kind: str, message_id: str) -> list[Any]:
    return [e for e in lab.events[mark:] if e.kind == kind and e.message_id == message_id]


# -- no lab -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        widgets.dashboard,
        widgets.composer,
        widgets.post_inspector,
        widgets.failure_injector,
        widgets.dlq_explorer,
    ],
)
def test_a_widget_without_a_running_lab_shows_one_sentence(make: Callable[[Any], Any]) -> None:
    for missing in (None, Lab("never-started")):
        shown = make(missing)
        assert "needs a running lab" in shown.value
        assert isinstance(shown, ipywidgets.HTML) and shown.value.count("</p>") == 1
        shown.close()


# -- failure injector ---------------------------------------------------------------------------
def test_injecting_500_makes_the_next_delivery_fail_and_retry_until_healed(
    lab: Lab, wait_for: Callable[..., Any]
) -> None:
    injector = widgets.failure_injector(lab)
    assert isinstance(injector, FailureInjector)
    injector.error_rate.value = 1.0
    injector.status.value = 500
    assert (lab.inject().error_rate, lab.inject().status) == (1.0, 500)
    assert "100% of requests answered 500" in injector.status_line.value

    mark = len(lab.events)
    (message_id,) = lab.send(ORDER)
    retries = wait_for(lambda: _events_since(lab, mark, "retry_scheduled", message_id), timeout=15)
    assert retries[0].status == 500
    assert any(r.status == 500 for r in lab.requests())

    injector.heal_button.click()
    assert injector.error_rate.value == 0 and lab.inject().error_rate == 0
    assert "healthy" in injector.status_line.value
    wait_for(lambda: _events_since(lab, mark, "deleted", message_id), timeout=15)
    received = _events_since(lab, mark, "received", message_id)
    assert len(received) >= 2 and received[-1].receive_count >= 2
    injector.close()


def test_injector_sets_latency_hang_and_crash_live_and_heal_resets_the_controls(lab: Lab) -> None:
    lab.stop_daemon()  # nothing is delivered while the worker is set to hang or crash
    injector = widgets.failure_injector(lab)
    injector.latency_ms.value = 300
    injector.status.value = 202
    injector.hang.value = True
    injector.crash.value = True
    now = lab.inject()
    assert (now.latency_ms, now.status, now.hang, now.crash) == (300, 202, True, True)
    assert "300 ms" in injector.status_line.value and "hang" in injector.status_line.value
    injector.heal()
    now = lab.inject()
    assert (now.latency_ms, now.hang, now.crash) == (0, False, False)
    assert (injector.latency_ms.value, injector.hang.value, injector.crash.value) == (0, False, False)
    injector.close()


def test_injector_starts_from_what_the_lab_already_has(lab: Lab) -> None:
    lab.inject(error_rate=0.5, status=418)
    injector = widgets.failure_injector(lab)
    assert injector.error_rate.value == 0.5 and injector.status.value == 418
    assert lab.inject().status == 418  # building the widget changed nothing
    injector.close()


def test_injector_follows_failures_a_cell_sets_and_heals_while_it_is_shown(
    lab: Lab, wait_for: Callable[..., Any]
) -> None:
    injector = widgets.failure_injector(lab)
    lab.inject(error_rate=1.0, status=503)  # a cell, not the widget
    wait_for(lambda: injector.error_rate.value == 1.0 and injector.status.value == 503, timeout=3)
    assert "100% of requests answered 503" in injector.status_line.value
    lab.heal()
    wait_for(lambda: injector.error_rate.value == 0 and "healthy" in injector.status_line.value, timeout=3)
    injector.error_rate.value = 0.25  # and the widget still drives the lab
    assert lab.inject().error_rate == 0.25
    injector.close()


# -- composer -----------------------------------------------------------------------------------
def test_composer_with_invalid_json_shows_the_error_and_sends_nothing(lab: Lab) -> None:
    lab.stop_daemon()
    composer = widgets.composer(lab)
    assert isinstance(composer, Composer)
    composer.body.value = '{"type": "order",'
    assert composer.send_button.disabled
    assert "Not valid JSON" in composer.body_check.value and "line 1" in composer.body_check.value
    composer.send_button.click()  # a click that reaches the kernel anyway must still send nothing
    assert "Nothing sent" in composer.result.value
    assert composer.sent_ids == []
    assert lab.depth() == Depth(0, 0, 0, 0)
    composer.body.value = ORDER
    assert not composer.send_button.disabled and "Valid JSON" in composer.body_check.value
    composer.close()


def test_composer_sends_count_messages_with_attributes_and_a_progress_bar(lab: Lab) -> None:
    lab.stop_daemon()
    composer = widgets.composer(lab)
    composer.body.value = ORDER
    composer.attributes.value = "tenant = acme\n\npriority=high"
    composer.count.value = 25
    composer.send_button.click()
    assert len(composer.sent_ids) == 25 and len(set(composer.sent_ids)) == 25
    assert composer.progress.value == composer.progress.max == 25
    assert composer.progress.layout.display is None  # shown for more than one batch
    assert "Sent 25 message(s)" in composer.result.value and "15 more" in composer.result.value
    assert lab.depth().visible == 25
    (message,) = lab.sqs.receive_message(QueueUrl=lab.queues.url, MessageAttributeNames=["All"])["Messages"]
    assert message["Body"] == ORDER
    assert message["MessageAttributes"]["tenant"]["StringValue"] == "acme"
    composer.close()


def test_composer_names_a_bad_attribute_line_and_a_delay_hides_messages(lab: Lab) -> None:
    lab.stop_daemon()
    composer = widgets.composer(lab)
    composer.attributes.value = "tenant"
    assert composer.send_button.disabled and "line 1" in composer.body_check.value
    composer.attributes.value = ""
    composer.delay.value = 30
    (message_id,) = composer.send()
    assert message_id in composer.result.value and "visible in 30 s" in composer.result.value
    assert lab.depth().delayed == 1
    composer.close()


# -- POST inspector -----------------------------------------------------------------------------
def test_post_inspector_shows_the_request_on_the_wire_and_both_encodings(
    lab: Lab, wait_for: Callable[..., Any]
) -> None:
    inspector = widgets.post_inspector(lab)
    assert isinstance(inspector, PostInspector)
    assert "sample message" in inspector.compare.value
    mark = len(lab.events)
    (message_id,) = lab.send(ORDER, attributes={"tenant": "acme"})
    wait_for(lambda: _events_since(lab, mark, "deleted", message_id))
    inspector.refresh_button.click()
    shown = inspector.deliveries.value
    assert "POST / HTTP/1.1" in shown and f"X-Aws-Sqsd-Msgid: {message_id}" in shown
    assert "X-Aws-Sqsd-Attr-tenant: acme" in shown
    assert "200 OK" in shown and html.escape(ORDER, quote=False) in shown
    compare = inspector.compare.value
    assert "newest delivery" in compare and message_id in compare
    assert html.escape(ARTICLE_FORM_WARNING, quote=False) in compare
    assert "SQSMessageBody=" in compare and "application/x-www-form-urlencoded" in compare
    assert compare.count("background:#fff3b0") == 2  # Content-Type and body differ, nothing else
    inspector.close()


def test_post_inspector_updates_by_itself_while_live(lab: Lab, wait_for: Callable[..., Any]) -> None:
    inspector = widgets.post_inspector(lab)
    (message_id,) = lab.send(ORDER)
    wait_for(lambda: message_id in inspector.deliveries.value)
    inspector.live.value = False
    assert _widget_threads() == []
    inspector.close()


def test_bodies_are_shown_safely() -> None:
    assert "&lt;script&gt;" in body_text(b"<script>alert(1)</script>")
    assert "\\x1b" in body_text(b"ok\x1b[31m")
    assert "not UTF-8" in body_text(b"\xff\xfe\x00") and "ff fe 00" in body_text(b"\xff\xfe\x00")
    assert "empty body" in body_text(b"")


# -- DLQ explorer -------------------------------------------------------------------------------
def test_dlq_explorer_redrives_selected_then_all_then_purges(lab: Lab) -> None:
    lab.stop_daemon()
    for n in range(3):
        lab.sqs.send_message(QueueUrl=lab.queues.dlq_url, MessageBody=f'{{"type": "order", "n": {n}}}')
    explorer = widgets.dlq_explorer(lab)
    assert isinstance(explorer, DlqExplorer)
    assert len(explorer.messages.options) == 3 and "3 message(s)" in explorer.status.value
    chosen = explorer.messages.options[0][1]
    explorer.messages.value = (chosen,)
    assert chosen in explorer.detail.value and "ApproximateReceiveCount" in explorer.detail.value

    explorer.redrive_selected_button.click()
    assert explorer.last_method == SELECTED_METHOD
    assert (lab.depth().dead_letter, lab.depth().visible) == (2, 1)
    assert chosen not in [value for _, value in explorer.messages.options]

    explorer.redrive_all_button.click()
    assert explorer.last_method == "receive-send-delete"  # moto has no StartMessageMoveTask
    assert "receive-send-delete" in explorer.status.value
    assert (lab.depth().dead_letter, lab.depth().visible) == (0, 3)

    lab.sqs.send_message(QueueUrl=lab.queues.dlq_url, MessageBody="{}")
    explorer.refresh_button.click()
    explorer.purge_button.click()
    assert explorer.last_method == "PurgeQueue" and lab.depth().dead_letter == 0
    explorer.close()


def test_dlq_explorer_lists_a_message_that_moves_in_while_it_is_shown(
    lab: Lab, wait_for: Callable[..., Any]
) -> None:
    lab.stop_daemon()
    lab.sqs.send_message(QueueUrl=lab.queues.dlq_url, MessageBody='{"n": 1}')
    explorer = widgets.dlq_explorer(lab)
    assert isinstance(explorer, DlqExplorer)
    first = explorer.messages.options[0][1]
    explorer.messages.value = (first,)
    lab.sqs.send_message(QueueUrl=lab.queues.dlq_url, MessageBody='{"n": 2}')  # no click on Refresh
    wait_for(lambda: len(explorer.messages.options) == 2, timeout=4)
    assert "2 message(s)" in explorer.status.value and explorer.messages.value == (first,)
    explorer.close()


def test_dlq_explorer_empties_the_dlq_by_hand_within_the_purge_minute(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STRICT_PURGE, "true")  # the real SQS rule: one PurgeQueue a minute
    lab.sqs.send_message(QueueUrl=lab.queues.dlq_url, MessageBody="dead")
    explorer = widgets.dlq_explorer(lab)
    assert explorer.purge() is True  # the fixture purged the DLQ a moment ago
    assert explorer.last_method == "drained" and "one PurgeQueue a minute" in explorer.status.value
    assert lab.depth().dead_letter == 0
    explorer.close()


# -- dashboard ----------------------------------------------------------------------------------
def test_dashboard_draws_at_least_two_frames_a_second_and_stops_cleanly(
    lab: Lab, wait_for: Callable[..., Any]
) -> None:
    board = widgets.dashboard(lab, instances=lambda: 2)
    assert isinstance(board, Dashboard) and board.running
    before = sum(e.kind == "deleted" for e in lab.events)  # the board counts since the lab started
    lab.send(ORDER, count=3)
    wait_for(lambda: board.processed == before + 3)
    start_frames, started = board.frames, time.monotonic()
    time.sleep(1.5)
    rate = (board.frames - start_frames) / (time.monotonic() - started)
    assert rate >= 2, f"only {rate:.1f} frames a second"
    assert bytes(board.image.value).startswith(b"\x89PNG")
    assert f"processed (200, deleted) <b>{before + 3}</b>" in board.numbers.value
    assert list(board.series["instances"])[-1] == 2

    board.stop_button.click()
    assert not board.running and _widget_threads() == []
    frames = board.frames
    time.sleep(0.4)
    assert board.frames == frames
    board.start_button.click()
    assert board.running
    board.close()
    assert _widget_threads() == []


def test_a_new_dashboard_for_the_same_lab_stops_the_old_one(lab: Lab) -> None:
    first = widgets.dashboard(lab)
    second = widgets.dashboard(lab)
    assert not first.running and second.running
    second.close()
    first.close()


def test_dashboard_memory_is_bounded_and_it_stops_when_the_queue_goes_away() -> None:
    calls = {"n": 0}

    def depth() -> Depth:
        calls["n"] += 1
        if calls["n"] > 20:
            raise EndpointError("gone")
        return Depth(calls["n"], 0, 0, 0)

    class GoneLab:
        worker = object()
        events: ClassVar[list[Any]] = []

    fake = GoneLab()
    fake.depth = depth  # type: ignore[attr-defined]
    board = Dashboard(fake, window_s=1, hz=10)
    deadline = time.monotonic() + 10
    while board.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not board.running and "stopped" in board.status.value
    assert len(board.times) == len(board.series["visible"]) == 11  # 1 s x 10 Hz + 1, not 20
    board.close()


# -- scaling tuner ------------------------------------------------------------------------------
def test_tuner_redraws_when_a_slider_moves_and_names_an_invalid_policy() -> None:
    tuner = widgets.scaling_tuner()
    assert isinstance(tuner, ScalingTuner)
    assert tuner.wait_idle()
    first = bytes(tuner.image.value)
    assert first.startswith(b"\x89PNG") and "latency p50" in tuner.summary.value

    tuner.target.value = 500
    assert tuner.wait_idle()
    assert bytes(tuner.image.value) != first

    tuner.policy.value = "threshold"
    assert tuner.threshold_box.layout.display is None and tuner.target_box.layout.display == "none"
    tuner.thresholds.value = (100, 100)
    assert tuner.wait_idle()
    assert tuner.error is not None and "LowerThreshold" in tuner.summary.value
    tuner.thresholds.value = (20, 200)
    assert tuner.wait_idle() and tuner.error is None
    assert "lab-busy" not in tuner._dom_classes and tuner.busy.value == ""
    tuner.close()
    assert _widget_threads() == []


def test_latest_wins_draws_only_the_newest_of_a_burst_and_reports_busy_in_order() -> None:
    done: list[int] = []
    busy: list[bool] = []

    def slow_draw(n: int) -> None:
        time.sleep(0.05)
        done.append(n)

    renderer: LatestWins[int] = LatestWins(slow_draw, "lab-test", busy.append)
    for n in range(1, 21):
        renderer.submit(n)
    assert renderer.wait_idle()
    renderer.close()
    assert done[-1] == 20 and len(done) < 20
    assert busy[0] is True and busy[-1] is False
    assert all(a != b for a, b in itertools.pairwise(busy))  # strictly alternating
