"""The pictures of notebooks 03-06 and 09: answers by status, receive counts, POST spans, effects, metrics.

Every figure is drawn at 8.2 in x 100 dpi, about 840 px: JupyterLab shows it 1:1 beside the file
browser, as the swimlane (labapp.course.swimlanes) does, and with the swimlane's colours. Each
returns a `Picture`: a Figure whose plain-text form says what it shows, for saved notebooks and
nbval; a cell shows it by ending with the call.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from labapp.course.lab import Lab
from labapp.course.observe import Attempt, MessageStory, QueueMetrics, dead_letter_ids, stories
from labapp.course.swimlanes import COLOURS, INK, Outcome

WIDTH_IN, DPI = 8.2, 100
FONT = 9
GREY = "#666666"


class Picture(Figure):
    """A matplotlib Figure whose plain-text form is one sentence about what it shows."""

    summary = "Figure"

    def __repr__(self) -> str:
        return self.summary


def _figure(height_in: float, summary: str, rows: int = 1, **grid: Any) -> tuple[Picture, Any]:
    """Return a new Picture (made by pyplot so Jupyter shows it, closed so only once) and its axes."""
    import matplotlib.pyplot as plt

    figure = plt.figure(
        FigureClass=Picture, figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained", facecolor="white"
    )
    plt.close(figure)
    assert isinstance(figure, Picture)
    figure.summary = summary
    axes = figure.subplots(rows, 1, squeeze=False, **grid)[:, 0]
    return figure, axes


def _colour(status: int | None) -> str:
    if status == 200:
        return COLOURS[Outcome.OK]
    return COLOURS[Outcome.STATUS] if status is not None else COLOURS[Outcome.TIMEOUT]


# -- 03: what each answer makes the daemon do ----------------------------------------------------------
def plot_statuses(rows: Sequence[tuple[int, int, str]]) -> Picture:
    """Draw the POSTs one message got for each status its handler answered (try_statuses' rows)."""
    deleted = [status for status, _, where in rows if where == "deleted"]
    figure, (axes,) = _figure(
        2.9, f"POSTs per answer: {len(rows)} statuses, deleted after one POST: {deleted or 'none'}."
    )
    names = [str(status) for status, _, _ in rows]
    posts = [count for _, count, _ in rows]
    axes.bar(names, posts, color=[_colour(status) for status, _, _ in rows], edgecolor=INK)
    for x, (count, (_, _, where)) in enumerate(zip(posts, rows, strict=True)):
        axes.text(x, count + 0.08, "deleted" if where == "deleted" else "DLQ", ha="center", fontsize=FONT)
    axes.set_xlabel("the status your handler answered", fontsize=FONT + 1)
    axes.set_ylabel("POSTs of one message", fontsize=FONT + 1)
    axes.set_ylim(0, max(posts, default=1) + 0.8)
    axes.set_yticks(range(max(posts, default=1) + 1))
    axes.tick_params(labelsize=FONT)
    axes.set_title("Only 200 ends a message after one POST", fontsize=FONT + 2, loc="left")
    return figure


# -- 04: the receive count climbing to maxReceiveCount ------------------------------------------------
def plot_posts(lab: Lab, message_ids: Sequence[str], labels: Sequence[str] | None = None) -> Picture:
    """Plot each message's receive count against time in a row of its own (o = 200, x = failed)."""
    told = stories(lab, message_ids)
    in_dlq = dead_letter_ids(lab)
    limit = lab.queues.max_receive_count
    names = list(labels) if labels else [mid[:8] for mid in message_ids]
    count = max(1, len(message_ids))
    figure, rows = _figure(
        1.3 + 1.45 * count,
        f"Receive counts of {len(message_ids)} messages; maxReceiveCount {limit}; "
        f"{sum(1 for mid in message_ids if mid in in_dlq)} moved to the DLQ.",
        rows=count,
        sharex=True,
    )
    for axes, mid, name in zip(rows, message_ids, names, strict=False):
        posts = told.get(mid, MessageStory(mid, [], False)).posts
        _receive_row(axes, posts, limit, mid in in_dlq, lab.options.ErrorVisibilityTimeout)
        axes.set_title(name, fontsize=FONT + 1, loc="left")
    rows[-1].set_xlabel("seconds since the message's first POST", fontsize=FONT + 1)
    figure.supylabel("receive count", fontsize=FONT + 1)
    figure.legend(
        handles=[
            Line2D(
                [], [], marker="o", color=COLOURS[Outcome.OK], ls="none", mec=INK, label="POST answered 200"
            ),
            Line2D(
                [], [], marker="X", color=COLOURS[Outcome.STATUS], ls="none", mec=INK, label="POST failed"
            ),
            Line2D([], [], color=GREY, ls=":", label=f"maxReceiveCount = {limit}"),
            Line2D([], [], marker="s", color=INK, ls="none", label="moved to the DLQ (next receive)"),
        ],
        loc="outside lower center",
        ncols=4,
        fontsize=FONT,
        frameon=False,
    )
    return figure


def _receive_row(
    axes: Any, posts: Sequence[Attempt], limit: int, dead: bool, error_visibility: float
) -> None:
    top = max([limit + 1, *(post.receive_count for post in posts)])
    if posts:
        times = [post.at - posts[0].at for post in posts]
        axes.step(times, [p.receive_count for p in posts], where="post", color=GREY, lw=1)
        for post, x in zip(posts, times, strict=True):
            marker = "o" if post.status == 200 else "X"
            axes.plot(x, post.receive_count, marker, color=_colour(post.status), mec=INK, ms=9)
            axes.annotate(
                str(post.status or "timeout"),
                (x, post.receive_count),
                textcoords="offset points",
                xytext=(7, -3),
                fontsize=FONT,
            )
        if dead:
            # SQS moves it on the next receive, once its last ErrorVisibilityTimeout has run out.
            last = posts[-1]
            axes.plot(last.at - posts[0].at + last.took + error_visibility, limit + 1, "s", color=INK, ms=8)
    axes.axhline(limit, color=GREY, linestyle=":", linewidth=1)
    axes.set_ylim(0.4, top + 0.6)
    axes.set_yticks(range(1, top + 1))
    axes.tick_params(labelsize=FONT)
    axes.grid(axis="x", alpha=0.3)


# -- 06: POSTs as bars, one row per POST, so two POSTs of one message at once both show -------------------
def plot_post_spans(
    lab: Lab,
    message_ids: Sequence[str],
    labels: Sequence[str] | None = None,
    marks: Mapping[str, float] | None = None,
) -> Picture:
    """Draw each POST as a bar from its start to its answer, one row per POST; marks are vertical lines."""
    told = stories(lab, message_ids)
    starts = [post.at for story in told.values() for post in story.posts]
    origin = min(starts) if starts else 0.0
    rows: list[tuple[str, Attempt]] = []
    for n, mid in enumerate(message_ids):
        name = labels[n] if labels else mid[:8]
        posts = told[mid].posts if mid in told else []
        rows += [(f"{name}, POST {k}", post) for k, post in enumerate(posts, 1)]
    overlapping = sum(1 for (_, a), (_, b) in itertools.pairwise(rows) if b.at < a.at + a.took)
    figure, (axes,) = _figure(
        1.7 + 0.5 * len(rows),
        f"{len(rows)} POSTs, one row each; {overlapping} started while the one before still ran.",
    )
    for row, (_, post) in enumerate(rows):
        axes.barh(
            row, post.took, left=post.at - origin, height=0.5, color=_colour(post.status), edgecolor=INK
        )
        answer = post.status if post.status is not None else "no answer in time"
        axes.text(
            post.at - origin + 0.03, row - 0.3, f"receive count {post.receive_count}: {answer}", fontsize=FONT
        )
    span = max((post.at - origin + post.took for _, post in rows), default=1.0)
    for text, x in (marks or {}).items():
        axes.axvline(x, color=GREY, linestyle=":")
        axes.text(x + 0.02 * span, len(rows) - 0.55, text, fontsize=FONT, color=GREY)
    axes.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=FONT + 1)
    axes.set_ylim(len(rows) - 0.3, -0.8)
    axes.set_xlim(0, span * 1.05)
    axes.set_xlabel("seconds since the first POST", fontsize=FONT + 1)
    axes.set_title("Each POST from its start to its answer, one row each", fontsize=FONT + 2, loc="left")
    axes.tick_params(labelsize=FONT)
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    return figure


# -- 05: deliveries against effects ----------------------------------------------------------------------
def plot_effects(deliveries: Mapping[str, int], applied: Mapping[str, int]) -> Picture:
    """Draw, per business id, the POSTs that carried it (grey) and the effects applied (green)."""
    names = sorted(deliveries)
    repeated = sum(1 for name in names if deliveries[name] > applied.get(name, 0))
    figure, (axes,) = _figure(
        3.0,
        f"{len(names)} business ids: {repeated} delivered more than once, "
        f"{sum(1 for n in names if applied.get(n, 0) > 1)} applied more than once.",
    )
    xs = range(len(names))
    axes.bar(
        xs, [deliveries[n] for n in names], color="#CCCCCC", edgecolor=INK, label="POSTs that carried it"
    )
    axes.bar(
        xs,
        [applied.get(n, 0) for n in names],
        width=0.4,
        color=COLOURS[Outcome.OK],
        edgecolor=INK,
        label="effects applied",
    )
    axes.set_xticks(list(xs), [name.split(":", 1)[-1] for name in names], fontsize=FONT)
    axes.set_yticks(range(max(deliveries.values(), default=1) + 1))
    axes.set_xlabel("business id (order)", fontsize=FONT + 1)
    axes.set_ylabel("count", fontsize=FONT + 1)
    axes.tick_params(labelsize=FONT)
    figure.legend(loc="outside right upper", fontsize=FONT, frameon=False)
    return figure


# -- 09: the queue's metrics -----------------------------------------------------------------------------
def plot_metrics(samples: Sequence[tuple[float, QueueMetrics]], title: str = "") -> Any:
    """Plot visible, not visible and DLQ depth over time, with the age of the oldest on a second axis."""
    import matplotlib.pyplot as plt

    xs = [at for at, _ in samples]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(xs, [m.visible for _, m in samples], label="visible (waiting)")
    ax.plot(xs, [m.not_visible for _, m in samples], label="not visible (in flight)")
    ax.plot(xs, [m.dead_letter for _, m in samples], label="DLQ depth", linestyle="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages")
    age = ax.twinx()
    age.plot(xs, [m.oldest_age_s for _, m in samples], color="grey", linestyle=":", label="age of oldest (s)")
    age.set_ylabel("age of oldest (s)")
    lines = ax.get_legend_handles_labels()[0] + age.get_legend_handles_labels()[0]
    # Below the axes, so the legend covers no line wherever the run puts them.
    labels = [str(line.get_label()) for line in lines]
    fig.legend(lines, labels, fontsize=8, loc="lower center", ncol=len(lines), frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
