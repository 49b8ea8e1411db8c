"""The pictures of notebooks 04, 06 and 09: each message's POSTs over time, and the queue's metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labapp.course.lab import Lab
from labapp.course.observe import Attempt, MessageStory, QueueMetrics, stories


def plot_posts(lab: Lab, message_ids: Sequence[str], labels: Sequence[str] | None = None) -> Any:
    """Plot receive count against time for each message, one marker per POST (x = failed, o = 200)."""
    import matplotlib.pyplot as plt

    told = stories(lab, message_ids)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for n, mid in enumerate(message_ids):
        posts = told.get(mid, MessageStory(mid, [], False)).posts
        if not posts:
            continue
        times = [post.at - posts[0].at for post in posts]
        counts = [post.receive_count for post in posts]
        (line,) = ax.step(times, counts, where="post", label=labels[n] if labels else mid[:8])
        for post, x in zip(posts, times, strict=True):
            ax.plot(
                x,
                post.receive_count,
                "o" if post.status == 200 else "x",
                color=line.get_color(),
                markersize=8,
            )
            ax.annotate(
                str(post.status),
                (x, post.receive_count),
                textcoords="offset points",
                xytext=(4, 4 - 14 * (n % 2)),
                fontsize=8,
            )
    limit = lab.options.MaxRetries
    ax.axhline(limit + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.text(
        0,
        limit + 0.6,
        "past maxReceiveCount: the next receive moves the message to the DLQ",
        fontsize=8,
        color="grey",
    )
    ax.set_xlabel("seconds since the message's first POST")
    ax.set_ylabel("receive count")
    ax.set_yticks(range(1, limit + 2))
    ax.set_ylim(0.5, limit + 1.2)
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.9), fontsize=8)
    fig.tight_layout()
    return fig


def plot_post_spans(
    lab: Lab,
    message_ids: Sequence[str],
    labels: Sequence[str] | None = None,
    marks: Mapping[str, float] | None = None,
) -> Any:
    """Draw each POST as a bar from its start to its answer, one row per POST; marks are vertical lines."""
    import matplotlib.pyplot as plt

    told = stories(lab, message_ids)
    starts = [post.at for story in told.values() for post in story.posts]
    origin = min(starts) if starts else 0.0
    rows: list[tuple[str, Attempt]] = []
    for n, mid in enumerate(message_ids):
        name = labels[n] if labels else mid[:8]
        rows += (
            [(f"{name}, POST {k}", post) for k, post in enumerate(told[mid].posts, 1)] if mid in told else []
        )
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.45 * len(rows)))
    for row, (_, post) in enumerate(rows):
        color = "tab:green" if post.status == 200 else "tab:red"
        ax.barh(row, post.took, left=post.at - origin, color=color, alpha=0.6, edgecolor="black")
        answer = post.status if post.status is not None else "no answer in time"
        ax.text(
            post.at - origin + 0.05,
            row,
            f"receive count {post.receive_count}: {answer}",
            va="center",
            fontsize=8,
        )
    for text, x in (marks or {}).items():
        ax.axvline(x, color="grey", linestyle=":")
        ax.text(x, -0.6, f" {text}", fontsize=8, color="grey")
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.8)
    ax.set_xlabel("seconds since the first POST")
    fig.tight_layout()
    return fig


def plot_metrics(samples: Sequence[tuple[float, QueueMetrics]], title: str = "") -> Any:
    """Plot visible, not visible and DLQ depth over time, with the age of the oldest on a second axis."""
    import matplotlib.pyplot as plt

    xs = [at for at, _ in samples]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(xs, [m.visible for _, m in samples], label="visible (waiting)")
    ax.plot(xs, [m.not_visible for _, m in samples], label="not visible (in flight)")
    ax.plot(xs, [m.dead_letter for _, m in samples], label="DLQ depth", linestyle="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages")
    age = ax.twinx()
    age.plot(xs, [m.oldest_age_s for _, m in samples], color="grey", linestyle=":", label="age of oldest (s)")
    age.set_ylabel("age of oldest (s)")
    lines = ax.get_legend_handles_labels()[0] + age.get_legend_handles_labels()[0]
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
