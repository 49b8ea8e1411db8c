"""course.swimlane(): a real lab with injected failures draws every element, and the picture is saved to look at."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import request
from matplotlib.backends.backend_agg import FigureCanvasAgg

from labapp import course
from labapp.course import swimlanes as sl
from labapp.course.handlers import install_handler
from labapp.course.observe import dead_letter_ids
from labapp.runtime.wait import wait_until
from labapp.sqsd.events import DaemonEvent, EventKind
from labapp.sqsd.options import LAB_PROFILE

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
INACTIVITY_S = 1  # so one POST times out in a second, not ten
PLANS = {
    "fine": ["200"],
    "flaky": ["503", "200"],
    "slow": ["timeout", "200"],
    "poison": ["500"],
}


def planned() -> Any:
    """Answer each POST as the message's plan says for this receive count ('timeout' sleeps past it)."""
    plan = json.loads(request.get_data())["plan"]
    count = int(request.headers["X-Aws-Sqsd-Receive-Count"])
    step = plan[min(count, len(plan)) - 1]
    if step == "timeout":
        time.sleep(INACTIVITY_S + 0.5)
        return "too late", 200
    return f"answered {step}", int(step)


@pytest.fixture(scope="module")
def run(emulator: Any) -> Iterator[tuple[course.Lab, dict[str, str]]]:
    """One real lab whose four messages meet 200, another status, a timeout, retries and the DLQ."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ENDPOINT_URL", emulator.url)
        lab = course.Lab("swimlane", LAB_PROFILE.replace(InactivityTimeout=INACTIVITY_S)).start()
        try:
            install_handler(lab, planned)
            ids = {name: lab.send({"name": name, "plan": plan})[0] for name, plan in PLANS.items()}
            deleted = {ids["fine"], ids["flaky"], ids["slow"]}
            wait_until(
                lambda: (
                    deleted <= {e.message_id for e in list(lab.events) if e.kind is EventKind.DELETED}
                    and ids["poison"] in dead_letter_ids(lab)
                ),
                40,
                "three deletes and one dead letter",
                interval=0.2,
            )
            yield lab, ids
        finally:
            lab.stop()


def test_every_lane_tells_what_happened_to_its_message(run: tuple[course.Lab, dict[str, str]]) -> None:
    lab, ids = run
    drawn = {
        lane.message_id: lane
        for lane in sl.lanes(list(lab.events), LAB_PROFILE.ErrorVisibilityTimeout, dead_letter_ids(lab))
    }
    outcomes = {name: [post.outcome for post in drawn[mid].posts] for name, mid in ids.items()}
    assert outcomes == {
        "fine": [sl.Outcome.OK],
        "flaky": [sl.Outcome.STATUS, sl.Outcome.OK],
        "slow": [sl.Outcome.TIMEOUT, sl.Outcome.OK],
        "poison": [sl.Outcome.STATUS] * LAB_PROFILE.MaxRetries,
    }
    assert [post.label for post in drawn[ids["flaky"]].posts] == ["503", "200"]
    assert [post.label for post in drawn[ids["slow"]].posts] == ["timeout", "200"]
    timed_out = drawn[ids["slow"]].posts[0]
    assert timed_out.end - timed_out.start == pytest.approx(INACTIVITY_S, abs=0.3)
    poison = drawn[ids["poison"]]
    assert [count for _, count in poison.received] == list(range(1, LAB_PROFILE.MaxRetries + 1))
    assert len(poison.hidden) == LAB_PROFILE.MaxRetries
    assert all(end - start == LAB_PROFILE.ErrorVisibilityTimeout for start, end in poison.hidden)
    assert poison.dead_letter == poison.hidden[-1][1] and poison.deleted is None
    assert all(drawn[ids[name]].deleted is not None for name in ("fine", "flaky", "slow"))


def test_the_figure_is_820_px_wide_with_a_legend_that_covers_nothing(
    run: tuple[course.Lab, dict[str, str]],
) -> None:
    lab, ids = run
    figure = course.swimlane(lab, list(ids.values()), list(ids))
    assert isinstance(figure, sl.SwimlaneFigure)
    assert figure.get_size_inches()[0] * figure.dpi == pytest.approx(820)
    ARTIFACTS.mkdir(exist_ok=True)
    figure.savefig(ARTIFACTS / "swimlane.png")
    renderer = FigureCanvasAgg(figure).get_renderer()
    (legend,) = figure.legends
    axes = figure.axes[0]
    assert not legend.get_window_extent(renderer).overlaps(axes.get_tightbbox(renderer))
    assert figure.bbox.contains(*legend.get_window_extent(renderer).p0)
    texts = [text.get_text() for text in legend.get_texts()]
    for wanted in ("answered 200", "another status", "timed out", "received", "ErrorVisibilityTimeout (1 s)"):
        assert any(wanted in text for text in texts), (wanted, texts)
    assert "deleted (after a 200)" in texts and "moved to the dead-letter queue" in texts
    assert [label.get_text() for label in axes.get_yticklabels()] == list(ids)
    assert "(s)" in axes.get_xlabel()
    assert repr(figure) == (
        "Swimlane of 4 messages: 8 POSTs (3 answered 200, 4 answered another status, 1 timed out); "
        "3 deleted, 1 moved to the dead-letter queue."
    )


def _event(kind: EventKind, at: float, **fields: Any) -> DaemonEvent:
    return DaemonEvent(kind=kind, time=1000.0 + at, message_id="m-1", **fields)


def test_released_dropped_and_unanswered_posts_are_drawn_too() -> None:
    events = [
        _event(EventKind.RECEIVED, 0, receive_count=1),
        _event(EventKind.POSTED, 0.1, receive_count=1),
        _event(EventKind.RELEASED, 0.5),
        _event(EventKind.DROPPED_BY_RETENTION, 2.0, receive_count=2),
    ]
    (lane,) = sl.lanes(events, 1.0)
    assert lane.released == [0.5] and lane.dropped == 2.0
    assert [(p.outcome, p.start, p.end) for p in lane.posts] == [
        (sl.Outcome.PENDING, pytest.approx(0.1), 2.0)
    ]
    figure = sl.draw([lane], ["m-1"], 1.0)
    texts = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "released when the daemon stopped" in texts and "dropped: older than RetentionPeriod" in texts
    assert "POST still waiting" in texts


def test_a_connection_error_is_not_called_a_timeout() -> None:
    events = [
        _event(EventKind.POSTED, 0, receive_count=1),
        _event(EventKind.RESPONSE, 0.01, elapsed=0.01, detail="connection error: ConnectionError"),
    ]
    (lane,) = sl.lanes(events, 1.0)
    assert [(p.outcome, p.label) for p in lane.posts] == [(sl.Outcome.NO_CONNECTION, "no connection")]


def test_no_events_draws_a_sentence_instead_of_empty_axes() -> None:
    figure = sl.draw(sl.lanes([], 1.0), [], 1.0)
    assert "No events yet" in figure.axes[0].texts[0].get_text()
    assert repr(figure).startswith("Swimlane of 0 messages")
