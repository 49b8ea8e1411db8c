"""A learner's progress in `lab_home()/progress.json`: the last result of every exercise check and
every committed prediction, in two sections ("exercises" and "predictions").

Nothing is written when the kernel runs a notebook from the repository's solutions/ folder (a test
run or an output refresh is not a learner's work), or when LAB_PROGRESS=off.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from labapp import settings
from labapp.settings import lab_home

log = logging.getLogger("labapp.course")

FILE_NAME = "progress.json"
VERSION = 1
STATUSES = ("correct", "not yet", "not attempted")
EXERCISES, PREDICTIONS = "exercises", "predictions"

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
    "11": "Incident drills",
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


def _load_all() -> dict[str, Any]:
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _section(data: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    section = data.get(name, {})
    return section if isinstance(section, dict) else {}


def load() -> dict[str, dict[str, Any]]:
    """Return exercise id -> {status, reason, when, first_correct}; empty when nothing was checked yet."""
    return _section(_load_all(), EXERCISES)


def load_predictions() -> dict[str, dict[str, Any]]:
    """Return prediction id -> {chosen, correct, when}; empty when nothing was predicted yet."""
    return _section(_load_all(), PREDICTIONS)


def not_recorded_because() -> str | None:
    """Return why results are not recorded now (LAB_PROGRESS=off, a solution notebook), or None."""
    if settings.progress_off():
        return f"{settings.PROGRESS_ENV}=off"
    try:
        here, solutions = Path.cwd().resolve(), settings.solutions_dir().resolve()
    except OSError:  # a deleted working folder is no solutions/ folder
        return None
    if here == solutions or solutions in here.parents:
        return "this kernel runs a notebook from solutions/"
    return None


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


def record(exercise_id: str, status: str, reason: str = "", when: dt.datetime | None = None) -> bool:
    """Store the result of one check (the last result wins; the first success is kept too).

    Return False, writing nothing, when results are not recorded now (see not_recorded_because()).
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    if _skipped(exercise_id):
        return False
    stamp = (when or dt.datetime.now()).isoformat(timespec="seconds")
    with _file_lock():
        data = _load_all()
        exercises = _section(data, EXERCISES)
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
        _write({**data, "version": VERSION, EXERCISES: exercises})
    return True


def record_prediction(
    prediction_id: str, chosen: str, correct: bool, when: dt.datetime | None = None
) -> bool:
    """Store one committed prediction such as '03.p1' (the last one wins); False when not recorded."""
    if _skipped(prediction_id):
        return False
    stamp = (when or dt.datetime.now()).isoformat(timespec="seconds")
    with _file_lock():
        data = _load_all()
        predictions = _section(data, PREDICTIONS)
        predictions[prediction_id] = {"chosen": chosen, "correct": bool(correct), "when": stamp}
        _write({**data, "version": VERSION, PREDICTIONS: predictions})
    return True


def _skipped(item_id: str) -> bool:
    reason = not_recorded_because()
    if reason is not None:
        log.debug("course: %s not recorded: %s", item_id, reason)
    return reason is not None


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


def predictions_line(predictions: dict[str, dict[str, Any]] | None = None) -> str:
    """Return e.g. '3 of 5 predictions right.', or an empty string when nothing was predicted."""
    predictions = load_predictions() if predictions is None else predictions
    if not predictions:
        return ""
    right = sum(1 for entry in predictions.values() if entry.get("correct") is True)
    noun = "prediction" if len(predictions) == 1 else "predictions"
    return f"{right} of {len(predictions)} {noun} right."


def format_table(rows: list[Row] | None = None) -> str:
    """Return the progress table and the predictions line as text (what `labapp progress` prints)."""
    table_text = _format_rows(table() if rows is None else rows)
    predicted = predictions_line()
    return f"{table_text}\n{predicted}" if predicted else table_text


def _format_rows(rows: list[Row]) -> str:
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
