"""Exercises with three verbs, as in Kaggle's learntools: `ex.check()`, `ex.hint()`, `ex.solution()`.

    ex = checks.exercise("02.1")   # binds to the notebook's variables
    ex.check()                     # correct / not yet / not attempted, with a reason
    ex.hint(); ex.hint(2)          # tiered hints
    ex.solution()                  # the code from solutions/NN_*.ipynb

A check tests behaviour: it runs the learner's function or options against a real lab (usually a
private one, `lessons.sandbox`) and looks at what the daemon and the worker did. Each result is
written to `progress.json` (see `labapp.progress`). The exercises themselves live in
`exercises_*.py`, one module per part of the course, each registering with `@checks.register(...)`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import sys
import textwrap
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labapp import lessons, progress
from labapp.config import LAB_PROFILE, SqsdOptions
from labapp.errors import LabError

CORRECT, NOT_YET, NOT_ATTEMPTED = "correct", "not yet", "not attempted"
_MARK = {CORRECT: "✔ Correct", NOT_YET: "✘ Not yet", NOT_ATTEMPTED: "… Not attempted"}


class NotAttempted(Exception):
    """The learner has not written an answer yet; the message says what is missing."""


class NotYet(Exception):
    """The answer runs but does not behave as the exercise asks; the message says how."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one check."""

    status: str
    reason: str

    def __str__(self) -> str:
        return f"{_MARK[self.status]}: {self.reason}"


Checker = Callable[["Answers"], str]


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: a checker that returns a success sentence or raises NotYet / NotAttempted."""

    id: str
    title: str
    checker: Checker
    hints: tuple[str, ...]


REGISTRY: dict[str, Exercise] = {}


def register(exercise_id: str, title: str, hints: tuple[str, ...]) -> Callable[[Checker], Checker]:
    """Register a checker for an exercise id such as '07.1' (used as a decorator)."""
    if not re.fullmatch(r"\d\d\.\d+", exercise_id):
        raise ValueError(f"exercise ids look like '02.1'; got {exercise_id!r}")

    def wrap(checker: Checker) -> Checker:
        REGISTRY[exercise_id] = Exercise(exercise_id, title, checker, hints)
        return checker

    return wrap


class Answers:
    """The notebook's variables as a check sees them, with helpers that name what is missing."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace

    def value(self, name: str) -> Any:
        """Return a variable, or raise NotAttempted while it is missing or still `...`."""
        if name not in self.namespace or self.namespace[name] is Ellipsis:
            raise NotAttempted(f"`{name}` is not set yet; fill in the cell above and run it.")
        return self.namespace[name]

    def function(self, name: str) -> Callable[..., Any]:
        """Return a function the learner defined, or raise NotAttempted / NotYet."""
        value = self.value(name)
        if not callable(value):
            raise NotYet(f"`{name}` should be a function; it is a {type(value).__name__}.")
        return value

    def options(self, name: str) -> SqsdOptions:
        """Return sqsd options the learner built, or raise NotAttempted / NotYet."""
        value = self.value(name)
        if not isinstance(value, SqsdOptions):
            raise NotYet(f"{name} should be sqsd options, e.g. LAB_PROFILE.replace(...).")
        return value

    @property
    def lab(self) -> Any:
        """Return the notebook's running lab."""
        lab = self.namespace.get("lab")
        if lab is None or getattr(lab, "worker", None) is None:
            raise NotYet("the lab is not running: run the preflight cell at the top first.")
        return lab


def run_check(exercise: Exercise, namespace: Mapping[str, Any]) -> Outcome:
    """Run one checker and turn whatever happens into an Outcome (a check never raises)."""
    try:
        outcome = Outcome(CORRECT, exercise.checker(Answers(namespace)))
    except NotAttempted as exc:
        outcome = Outcome(NOT_ATTEMPTED, str(exc))
    except NotYet as exc:
        outcome = Outcome(NOT_YET, str(exc))
    except Exception as exc:  # the learner's code failed inside the check: that is feedback, not a crash
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        outcome = Outcome(NOT_YET, f"your code raised {type(exc).__name__}: {first_line}")
    return outcome


class BoundExercise:
    """An exercise bound to the notebook's variables: check(), hint(), solution()."""

    def __init__(self, exercise: Exercise, namespace: Mapping[str, Any]) -> None:
        self.exercise = exercise
        self.namespace = namespace
        self.last: Outcome | None = None
        self._hints_shown = 0

    def check(self) -> None:
        """Run the check, print the result and record it in progress.json."""
        self.last = run_check(self.exercise, self.namespace)
        print(f"{self.exercise.id} {self.exercise.title}\n{self.last}")
        try:
            progress.record(self.exercise.id, self.last.status, self.last.reason)
        except OSError as exc:
            print(f"(could not save your progress: {exc})")

    def hint(self, level: int | None = None) -> None:
        """Print hint `level` (1 = gentle); without a level, the next one."""
        hints = self.exercise.hints
        if not hints:
            print("No hint for this one; try ex.solution().")
            return
        level = level or min(self._hints_shown + 1, len(hints))
        level = max(1, min(level, len(hints)))
        self._hints_shown = max(self._hints_shown, level)
        more = f" (next: .hint({level + 1}))" if level < len(hints) else " (that is the last hint)"
        print(f"Hint {level} of {len(hints)}{more}:\n{hints[level - 1]}")

    def solution(self) -> None:
        """Print the solution code from the solutions notebook."""
        print(f"Solution for {self.exercise.id}:\n\n{solution_text(self.exercise.id)}")

    def __repr__(self) -> str:
        return f"<Exercise {self.exercise.id}: {self.exercise.title}; try .check(), .hint(), .solution()>"


# Which module registers each notebook's exercises; imported on first use, so a learner who
# restarts the kernel and jumps straight to an exercise still finds it.
EXERCISE_MODULES = {
    **dict.fromkeys(("00", "01", "02", "03"), "labapp.exercises_basics"),
    **dict.fromkeys(("04", "05", "06", "09", "10"), "labapp.exercises_reliability"),
    "07": "labapp.exercises_autoscaling",
    "08": "labapp.exercises_periodic",
}


def exercise(exercise_id: str, namespace: Mapping[str, Any] | None = None) -> BoundExercise:
    """Return exercise `exercise_id` bound to the calling notebook's variables."""
    if exercise_id not in REGISTRY and exercise_id[:2] in EXERCISE_MODULES:
        importlib.import_module(EXERCISE_MODULES[exercise_id[:2]])
    if exercise_id not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise KeyError(f"No exercise {exercise_id!r}; known: {known}.")
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    return BoundExercise(REGISTRY[exercise_id], namespace)


# -- solution regions in notebook cells ----------------------------------------------------------------
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?: (?P<id>\d\d\.\d+))?[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
STUB = re.compile(r"^[ \t]*# STUB: (?P<code>.*)$")
STUB_COMMENT = "# your code here"


def split_solution(source: str) -> tuple[str, dict[str, str]]:
    """Return (learner source, {exercise id: solution code}) for one cell's source.

    A region runs from `# BEGIN SOLUTION [id]` to `# END SOLUTION`. In the learner's copy it becomes
    its `# STUB: ...` lines (uncommented), or `...  # your code here` when it has none.
    """
    out: list[str] = []
    solutions: dict[str, str] = {}
    region: list[str] | None = None
    stubs: list[str] = []
    indent, region_id = "", ""
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if region is not None:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution region")
            region, stubs = [], []
            indent, region_id = begin["indent"], begin["id"] or ""
        elif end:
            if region is None:
                raise ValueError(f"line {number}: END SOLUTION without BEGIN SOLUTION")
            for stub in stubs or ["..."]:
                out.append(f"{indent}{stub}" + ("" if "#" in stub else f"  {STUB_COMMENT}"))
            if region_id:
                code = textwrap.dedent("\n".join(region)).strip("\n")
                solutions[region_id] = f"# the body of the function above\n{code}" if indent else code
            region = None
        elif region is not None:
            stub_match = STUB.match(line)
            if stub_match:
                stubs.append(stub_match["code"])
            else:
                region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError("a BEGIN SOLUTION region is never closed with END SOLUTION")
    return "\n".join(out), solutions


def solutions_dir() -> Path:
    """Return the folder with the solution notebooks (LAB_SOLUTIONS_DIR, or the repository's)."""
    return Path(os.environ.get("LAB_SOLUTIONS_DIR") or Path(__file__).resolve().parents[1] / "solutions")


def solution_text(exercise_id: str) -> str:
    """Return the code of one solution region, read from solutions/NN_*.ipynb."""
    notebook = progress.notebook_of(exercise_id)
    for path in sorted(solutions_dir().glob(f"{notebook}_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            found = split_solution(source)[1]
            if exercise_id in found:
                return found[exercise_id]
    return f"(the solution is in solutions/{notebook}_*.ipynb, which is not on this machine)"


def fresh_id(prefix: str) -> str:
    """Return a business id no earlier run has used, so a check never meets an old ledger entry."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ==================================================================================================
# The exercises of notebooks 00-06, 09 and 10. Each checker drives a real lab and reads what happened.
# ==================================================================================================


# Checks that only need a failure to end in the DLQ give up after one POST, so they take seconds.
FAST_FAIL = LAB_PROFILE.replace(MaxRetries=1)


def require_answer(box: Any, handler: Callable[[], Any], name: str) -> None:
    """Raise NotAttempted when a Flask handler still returns nothing (the learner's stub)."""
    headers = {"X-Aws-Sqsd-Msgid": "precheck", "X-Aws-Sqsd-Receive-Count": "1"}
    with worker_app(box).test_request_context("/", method="POST", data=b"{}", headers=headers):
        try:
            result = handler()
        except Exception:
            return  # it does something with the body: a real attempt
    if result is None or result is Ellipsis:
        raise NotAttempted(f"`{name}` returns nothing yet; write its body and run the cell.")


def worker_app(box: lessons.LessonLab) -> Any:
    assert box.worker is not None, "the check's lab has no worker"
    return box.worker.app


def first_status(story: lessons.MessageStory | None) -> int | None:
    return story.posts[0].status if story and story.posts else None


def wait_idle(box: Any, timeout: float = 30) -> None:
    try:
        box.wait_until_idle(timeout=timeout)
    except LabError as exc:
        raise NotYet(f"the check's queue never drained ({exc}); does your code hang?") from None


def scratch_queue(sqs: Any, name: str) -> str:
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    sqs.purge_queue(QueueUrl=url)
    return url


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]])
