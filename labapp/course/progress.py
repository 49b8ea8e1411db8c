"""A learner's progress: the last result of every exercise check, kept in `lab_home()/progress.json`."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from labapp.settings import lab_home

FILE_NAME = "progress.json"
STATUSES = ("correct", "not yet", "not attempted")

NOTEBOOK_TITLES = {
    "00": "Setup check",
    "01": "Queues and messages",
    "02": "The daemon and the POST",
    "03": "Writing the worker",
    "04": "Failures, retries and the DLQ",
    "05": "Idempotency and duplicates",
    "06": "Concurrency and timeouts",
    "07": "Autoscaling",
    "08": "Periodic tasks",
    "09": "Monitoring and troubleshooting",
    "10": "From the lab to AWS",
}

_lock = threading.Lock()


class Row(NamedTuple):
    """One line of the progress table."""

    notebook: str
    exercise: str
    status: str
    when: str


def path() -> Path:
    """Return the progress file of this lab home."""
    return lab_home() / FILE_NAME


def notebook_of(exercise_id: str) -> str:
    """Return the notebook number of an exercise id such as '02.1'."""
    return exercise_id.split(".", 1)[0]


def load() -> dict[str, dict[str, Any]]:
    """Return exercise id -> {status, reason, when, first_correct}; empty when nothing was checked yet."""
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    exercises = data.get("exercises", {}) if isinstance(data, dict) else {}
    return exercises if isinstance(exercises, dict) else {}


@contextlib.contextmanager
def _file_lock() -> Iterator[None]:
    # Several kernels may check at once; fcntl is missing on Windows, where the thread lock must do.
    with _lock:
        try:
            import fcntl
        except ImportError:
            yield
            return
        with open(lab_home() / f"{FILE_NAME}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def record(exercise_id: str, status: str, reason: str = "", when: dt.datetime | None = None) -> None:
    """Store the result of one check (the last result wins; the first success is kept too)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    stamp = (when or dt.datetime.now()).isoformat(timespec="seconds")
    with _file_lock():
        exercises = load()
        entry = exercises.get(exercise_id, {})
        first_correct = entry.get("first_correct")
        if status == "correct" and not first_correct:
            first_correct = stamp
        exercises[exercise_id] = {
            "status": status,
            "reason": reason,
            "when": stamp,
            "first_correct": first_correct,
        }
        _write({"version": 1, "exercises": exercises})


def _write(data: dict[str, Any]) -> None:
    target = path()
    # Write then rename, so a crash never leaves half a file behind.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".progress-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, target)


def _sort_key(exercise_id: str) -> tuple[str, int, str]:
    notebook, _, number = exercise_id.partition(".")
    return (notebook, int(number) if number.isdigit() else 0, number)


def table() -> list[Row]:
    """Return one row per checked exercise: (notebook, exercise, status, when), in course order."""
    rows = []
    for exercise_id, entry in sorted(load().items(), key=lambda item: _sort_key(item[0])):
        notebook = notebook_of(exercise_id)
        title = NOTEBOOK_TITLES.get(notebook, "")
        rows.append(
            Row(
                notebook=f"{notebook} {title}".strip(),
                exercise=exercise_id,
                status=str(entry.get("status", "")),
                when=str(entry.get("when", "")),
            )
        )
    return rows


def format_table(rows: list[Row] | None = None) -> str:
    """Return the progress table as aligned text (what `labapp progress` prints)."""
    rows = table() if rows is None else rows
    if not rows:
        return "No exercise checked yet: run a check cell, e.g. `ex.check()` in notebook 01."
    header = Row("notebook", "exercise", "status", "when")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    solved = sum(1 for row in rows if row.status == "correct")
    lines.append(f"\n{solved} of {len(rows)} checked exercises correct.")
    return "\n".join(lines)


def reset() -> None:
    """Forget every recorded result."""
    with _file_lock():
        path().unlink(missing_ok=True)
