"""A swimlane of your own run: one lane per message, every POST as a bar, the hidden gaps between them.

    course.swimlane(lab)                                   # every message the daemon has seen
    course.swimlane(lab, [flaky, poison], ["flaky", "poison"])

Drawn from the daemon's events (`lab.events`) and the DLQ: a receive marker under the lane, a bar
per POST from its start to its answer, coloured and labelled by outcome (200, another status, a
timeout), a hatched band while the message is invisible after a failure (ErrorVisibilityTimeout,
docs/aws-behaviour.md#opt-error-visibility-timeout), and a marker where it was deleted or moved to
the dead-letter queue (docs/aws-behaviour.md#retries-counted-by-sqs).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from labapp.course.lab import Lab
from labapp.course.observe import dead_letter_ids
from labapp.sqsd.events import DaemonEvent, EventKind

# 8.2 in at 100 dpi, plus the inline backend's 0.1 in padding: about 840 px, which JupyterLab shows
# 1:1 (not scaled, not blurred) in an output area of 848 px, the width beside the file browser at 1280 px.
WIDTH_IN, DPI = 8.2, 100
LANE_IN, FRAME_IN, MIN_HEIGHT_IN = 0.62, 2.3, 3.2
BAR_HALF = 0.17  # half the height of a bar, in lanes
MIN_BAR = 0.004  # of the time span: an answer in 5 ms still shows as a bar
FONT = 9
# Okabe-Ito, as in the course diagrams: distinct under the common colour-vision deficiencies.
INK, GREY, WHITE = "#222222", "#666666", "#FFFFFF"
HATCH = "////"


class Outcome(str, enum.Enum):
    """How one POST ended, as the swimlane colours and labels it."""

    OK = "200"
    STATUS = "another status"
    TIMEOUT = "timeout"
    NO_CONNECTION = "no connection"
    PENDING = "no answer yet"

    def __str__(self) -> str:
        return self.value


COLOURS = {
    Outcome.OK: "#009E73",
    Outcome.STATUS: "#D55E00",
    Outcome.TIMEOUT: "#CC79A7",
    Outcome.NO_CONNECTION: "#E69F00",
    Outcome.PENDING: WHITE,
}
LEGEND = {
    Outcome.OK: "POST answered 200: deleted",
    Outcome.STATUS: "POST answered another status",
    Outcome.TIMEOUT: "POST timed out (InactivityTimeout)",
    Outcome.NO_CONNECTION: "POST could not connect",
    Outcome.PENDING: "POST still waiting",
}


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One POST on the swimlane: start and end (seconds), receive count, outcome and its label."""

    start: float
    end: float
    receive_count: int
    outcome: Outcome
    label: str


@dataclasses.dataclass
class Lane:
    """Everything the swimlane draws for one message, in seconds since the first event."""

    message_id: str
    received: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    posts: list[Attempt] = dataclasses.field(default_factory=list)
    hidden: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    deleted: float | None = None
    dropped: float | None = None
    released: list[float] = dataclasses.field(default_factory=list)
    dead_letter: float | None = None

    @property
    def end(self) -> float:
        """Return the last moment the lane shows."""
        times = [t for t, _ in self.received] + [p.end for p in self.posts] + [e for _, e in self.hidden]
        times += [t for t in (self.deleted, self.dropped, self.dead_letter) if t is not None] + self.released
        return max(times, default=0.0)


def _outcome(event: DaemonEvent) -> tuple[Outcome, str]:
    if event.status == 200:
        return Outcome.OK, "200"
    if event.status is not None:
        return Outcome.STATUS, str(event.status)
    if event.detail.startswith(("ETIMEDOUT", "timeout")):  # the errno sqsd logs for a timeout
        return Outcome.TIMEOUT, "timeout"
    return Outcome.NO_CONNECTION, "no connection"


def lanes(
    events: Iterable[DaemonEvent],
    error_visibility_s: float,
    dead_letters: Iterable[str] = (),
    message_ids: Sequence[str] | None = None,
) -> list[Lane]:
    """Group the daemon's events into lanes (in `message_ids` order, else by first event).

    `dead_letters` are the ids now in the DLQ: SQS moved each one when the receive after its last
    hidden gap would have passed maxReceiveCount, so its marker sits at the end of that gap.
    """
    wanted = None if message_ids is None else set(message_ids)
    chosen = [e for e in events if e.message_id is not None and (wanted is None or e.message_id in wanted)]
    if not chosen:
        return []
    origin = min(e.time for e in chosen)
    found: dict[str, Lane] = {}
    pending: dict[str, list[tuple[float, int]]] = {}
    for event in sorted(chosen, key=lambda e: e.time):
        mid = str(event.message_id)
        lane = found.setdefault(mid, Lane(mid))
        at = event.time - origin
        if event.kind is EventKind.RECEIVED:
            lane.received.append((at, event.receive_count or 1))
        elif event.kind is EventKind.POSTED:
            pending.setdefault(mid, []).append((at, event.receive_count or 1))
        elif event.kind is EventKind.RESPONSE:
            began = at - (event.elapsed or 0.0)
            waiting = pending.get(mid) or [(began, 1)]
            # Two POSTs of one message can overlap: match the answer to the POST that began `elapsed` ago.
            start, count = min(waiting, key=lambda post: abs(post[0] - began))
            if (start, count) in pending.get(mid, []):
                pending[mid].remove((start, count))
            outcome, label = _outcome(event)
            lane.posts.append(Attempt(start, at, count, outcome, label))
        elif event.kind is EventKind.RETRY_SCHEDULED:
            lane.hidden.append((at, at + error_visibility_s))
        elif event.kind is EventKind.DELETED:
            lane.deleted = at
        elif event.kind is EventKind.DROPPED_BY_RETENTION:
            lane.dropped = at
        elif event.kind is EventKind.RELEASED:
            lane.released.append(at)
    last = max(e.time for e in chosen) - origin
    for mid, waiting in pending.items():
        for start, count in waiting:
            found[mid].posts.append(Attempt(start, last, count, Outcome.PENDING, "no answer yet"))
    dead = set(dead_letters)
    for lane in found.values():
        lane.posts.sort(key=lambda post: post.start)
        if lane.message_id in dead:
            lane.dead_letter = max((end for _, end in lane.hidden), default=lane.end)
    order = list(message_ids) if message_ids is not None else list(found)
    return [found[mid] for mid in order if mid in found]


class SwimlaneFigure(Figure):
    """A matplotlib Figure whose plain-text form says what it shows (saved notebooks, nbval)."""

    summary = "Swimlane"

    def __repr__(self) -> str:
        return self.summary


def summary(drawn: Sequence[Lane]) -> str:
    """Return one sentence that counts what a swimlane shows."""
    posts = [post for lane in drawn for post in lane.posts]
    counts = {outcome: sum(1 for p in posts if p.outcome is outcome) for outcome in Outcome}
    parts = [f"{counts[Outcome.OK]} answered 200"]
    parts += [f"{counts[o]} {name}" for o, name in _COUNTED.items() if counts[o]]
    deleted = sum(1 for lane in drawn if lane.deleted is not None)
    dead = sum(1 for lane in drawn if lane.dead_letter is not None)
    noun = "message" if len(drawn) == 1 else "messages"
    return (
        f"Swimlane of {len(drawn)} {noun}: {len(posts)} POSTs ({', '.join(parts)}); "
        f"{deleted} deleted, {dead} moved to the dead-letter queue."
    )


_COUNTED = {
    Outcome.STATUS: "answered another status",
    Outcome.TIMEOUT: "timed out",
    Outcome.NO_CONNECTION: "could not connect",
    Outcome.PENDING: "still waiting",
}


def draw(drawn: Sequence[Lane], names: Sequence[str], error_visibility_s: float) -> SwimlaneFigure:
    """Draw lanes, each named by `names`, as a figure (made by pyplot so Jupyter shows it, closed so only once)."""
    import matplotlib.pyplot as plt

    height = max(MIN_HEIGHT_IN, FRAME_IN + LANE_IN * len(drawn))
    figure = plt.figure(
        FigureClass=SwimlaneFigure, figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained", facecolor=WHITE
    )
    plt.close(figure)  # returned, not left for the inline backend to show a second time
    assert isinstance(figure, SwimlaneFigure)
    figure.summary = summary(drawn)
    axes = figure.add_subplot()
    axes.set_facecolor(WHITE)
    if not drawn:
        axes.text(
            0.5, 0.5, "No events yet: send a message, let the daemon work, then draw again.", ha="center"
        )
        axes.set_axis_off()
        return figure
    span = max(lane.end for lane in drawn) or 1.0
    for row, lane in enumerate(drawn):
        _draw_lane(axes, row, lane, span)
    axes.set_yticks(range(len(drawn)), list(names), fontsize=FONT + 1)
    axes.set_ylim(len(drawn) - 0.4, -0.7)
    axes.set_xlim(-0.02 * span, span * 1.08)
    axes.set_xlabel("time since the first event (s)", fontsize=FONT + 1)
    axes.set_ylabel("message", fontsize=FONT + 1)
    axes.tick_params(axis="x", labelsize=FONT)
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    axes.set_title("What the daemon did with each message", fontsize=FONT + 2, loc="left")
    figure.legend(
        handles=_legend(drawn, error_visibility_s),
        loc="outside lower center",
        ncols=2,
        fontsize=FONT,
        frameon=False,
    )
    return figure


def _draw_lane(axes: Any, row: int, lane: Lane, span: float) -> None:
    for start, end in lane.hidden:
        axes.barh(
            row,
            end - start,
            left=start,
            height=2 * BAR_HALF,
            color="none",
            edgecolor=GREY,
            hatch=HATCH,
            lw=0.8,
        )
    for post in lane.posts:
        width = max(post.end - post.start, MIN_BAR * span)
        axes.barh(
            row,
            width,
            left=post.start,
            height=2 * BAR_HALF,
            color=COLOURS[post.outcome],
            edgecolor=INK,
            lw=0.8,
        )
        axes.text(
            post.start, row - BAR_HALF - 0.05, post.label, fontsize=FONT, va="bottom", ha="left", color=INK
        )
    for at, count in lane.received:
        axes.plot(at, row + BAR_HALF + 0.12, marker="^", color=INK, markersize=6, linestyle="none")
        axes.text(
            at, row + BAR_HALF + 0.28, f"#{count}", fontsize=FONT - 1, va="top", ha="center", color=GREY
        )
    if lane.deleted is not None:
        # Under the bars (a lower zorder), so the 200 bar it follows stays visible on top of it.
        axes.plot(
            lane.deleted, row, marker="o", ms=9, color=COLOURS[Outcome.OK], mec=INK, ls="none", zorder=0.9
        )
    if lane.dead_letter is not None:
        axes.plot(lane.dead_letter, row, marker="s", markersize=9, color=INK, linestyle="none")
        axes.text(
            lane.dead_letter + 0.012 * span, row, "DLQ", fontsize=FONT, va="center", ha="left", weight="bold"
        )
    if lane.dropped is not None:
        axes.plot(lane.dropped, row, marker="X", markersize=9, color=GREY, mec=INK, linestyle="none")
    for at in lane.released:
        axes.plot(at, row, marker="|", markersize=12, color=GREY, mew=2, linestyle="none")


def _legend(drawn: Sequence[Lane], error_visibility_s: float) -> list[Any]:
    """Return legend entries for what the lanes show, and nothing they do not."""
    seen = {post.outcome for lane in drawn for post in lane.posts}
    handles: list[Any] = [
        Patch(facecolor=COLOURS[o], edgecolor=INK, label=LEGEND[o]) for o in Outcome if o in seen
    ]
    handles.append(Line2D([], [], marker="^", color=INK, linestyle="none", label="received (#receive count)"))
    if any(lane.hidden for lane in drawn):
        handles.append(
            Patch(
                facecolor="none",
                edgecolor=GREY,
                hatch=HATCH,
                label=f"invisible after a failure: ErrorVisibilityTimeout ({error_visibility_s:g} s)",
            )
        )
    marks = [
        (any(lane.deleted is not None for lane in drawn), "o", COLOURS[Outcome.OK], "deleted (after a 200)"),
        (any(lane.dead_letter is not None for lane in drawn), "s", INK, "moved to the dead-letter queue"),
        (any(lane.dropped is not None for lane in drawn), "X", GREY, "dropped: older than RetentionPeriod"),
        (any(lane.released for lane in drawn), "|", GREY, "released when the daemon stopped"),
    ]
    for shown, marker, colour, text in marks:
        if shown:
            handles.append(Line2D([], [], marker=marker, color=colour, mec=INK, linestyle="none", label=text))
    return handles


def swimlane(
    lab: Lab, message_ids: Sequence[str] | None = None, labels: Sequence[str] | None = None
) -> Figure:
    """Return a swimlane figure of the lab's messages (all of them, or `message_ids` with `labels`)."""
    error_visibility = float(lab.options.ErrorVisibilityTimeout)
    drawn = lanes(list(lab.events), error_visibility, dead_letter_ids(lab), message_ids)
    given = dict(zip(message_ids or [lane.message_id for lane in drawn], labels or [], strict=False))
    return draw(drawn, [given.get(lane.message_id, lane.message_id[:8]) for lane in drawn], error_visibility)
