"""Exercises with three verbs, as in Kaggle's learntools: `ex.check()`, `ex.hint()`, `ex.solution()`.

    ex = course.exercise("02.1")   # binds to the notebook's variables
    ex.check()                     # correct / not yet / not attempted, with a reason
    ex.hint(); ex.hint(2)          # tiered hints
    ex.solution()                  # the code from solutions/NN_*.ipynb

This core knows nothing of any lesson or of the lab's runtime (learntools' core/ is the model):
each notebook's checks live in `labapp.course.checks.nbNN`, registered with `@register(...)`,
and drive a real lab through `labapp.course.checks.support`. Each result shows as a box (see
`labapp.course.feedback`) and is written to `progress.json` (see `labapp.course.progress`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import importlib
import json
import re
import sys
import textwrap
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from labapp import settings
from labapp.course import feedback, portfolio, progress

T = TypeVar("T")


class Status(str, enum.Enum):
    """What a check found."""

    CORRECT = "correct"
    NOT_YET = "not yet"
    NOT_ATTEMPTED = "not attempted"

    def __str__(self) -> str:
        return self.value


CORRECT, NOT_YET, NOT_ATTEMPTED = Status.CORRECT, Status.NOT_YET, Status.NOT_ATTEMPTED


class NotAttempted(Exception):
    """The learner has not written an answer yet; the message says what is missing."""


class NotYet(Exception):
    """The answer runs but does not behave as the exercise asks; the message says how."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one check."""

    status: Status
    reason: str

    def __str__(self) -> str:
        return f"{feedback.LABELS[feedback.Tone(self.status.value)]}: {self.reason}"


Checker = Callable[["Answers"], str]


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: a checker that returns a success sentence or raises NotYet / NotAttempted.

    `solution`, when set, writes the solution for this learner's own variables (an exercise whose
    answer depends on a seed); otherwise the solution is read from the solutions notebook.
    """

    id: str
    title: str
    checker: Checker
    hints: tuple[str, ...]
    solution: Checker | None = None


REGISTRY: dict[str, Exercise] = {}


#: The words of every exercise (title, hints), kept apart from the checks so they read as course text.
TEXTS = Path(__file__).resolve().parents[1] / "exercises.yaml"


@functools.cache
def exercise_texts() -> dict[str, dict[str, Any]]:
    """Return exercise id -> {title, hints} from exercises.yaml."""
    texts: dict[str, dict[str, Any]] = yaml.safe_load(TEXTS.read_text(encoding="utf-8"))
    return texts


def register(exercise_id: str, solution: Checker | None = None) -> Callable[[Checker], Checker]:
    """Register a checker for an exercise id such as '07.1' (used as a decorator); its words are in exercises.yaml.

    `solution(answers)` returns the solution's code for this learner, when it is not the same for all.
    """
    if not re.fullmatch(r"\d\d\.\d+", exercise_id):
        raise ValueError(f"exercise ids look like '02.1'; got {exercise_id!r}")
    text = exercise_texts().get(exercise_id)
    if text is None:
        raise ValueError(f"exercise {exercise_id} has no title and hints in {TEXTS.name}")

    def wrap(checker: Checker) -> Checker:
        REGISTRY[exercise_id] = Exercise(exercise_id, text["title"], checker, tuple(text["hints"]), solution)
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

    def instance(self, name: str, kind: type[T], example: str) -> T:
        """Return a variable of this type, or raise NotAttempted / NotYet naming an example."""
        value = self.value(name)
        if not isinstance(value, kind):
            raise NotYet(f"{name} should be {example}.")
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
        """Run the check, show the result in a box and record it in progress.json."""
        self.last = run_check(self.exercise, self.namespace)
        exercise = self.exercise
        feedback.show(feedback.result(exercise.id, exercise.title, self.last.status.value, self.last.reason))
        try:
            progress.record(exercise.id, self.last.status, self.last.reason)
            kept = portfolio.keep(exercise.id, self.namespace) if self.last.status == CORRECT else None
        except OSError as exc:
            print(f"(could not save your progress: {exc})")
        else:
            if kept:
                print(kept)

    def hint(self, level: int | None = None) -> None:
        """Show hint `level` (1 = gentle); without a level, the next one."""
        hints = self.exercise.hints
        if not hints:
            feedback.show(feedback.no_hint(self.exercise.id))
            return
        level = level or min(self._hints_shown + 1, len(hints))
        level = max(1, min(level, len(hints)))
        self._hints_shown = max(self._hints_shown, level)
        feedback.show(feedback.hint(self.exercise.id, level, len(hints), hints[level - 1]))

    def solution(self) -> None:
        """Show the solution code (from the solutions notebook, or written for you), behind a click."""
        own = self.exercise.solution
        if own is None:
            text = solution_text(self.exercise.id)
        else:
            try:
                text = own(Answers(self.namespace))
            except (NotAttempted, NotYet) as exc:  # e.g. the cell the solution depends on has not run
                text = f"# {exc}"
        feedback.show(feedback.solution(self.exercise.id, text))

    def __repr__(self) -> str:
        return f"<Exercise {self.exercise.id}: {self.exercise.title}; try .check(), .hint(), .solution()>"


def _module_of(exercise_id: str) -> str:
    return f"labapp.course.checks.nb{exercise_id[:2]}"


def exercise(exercise_id: str, namespace: Mapping[str, Any] | None = None) -> BoundExercise:
    """Return exercise `exercise_id` bound to the calling notebook's variables."""
    if exercise_id not in REGISTRY and re.fullmatch(r"\d\d\.\d+", exercise_id):
        # No such notebook: the KeyError below names the known exercises.
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(_module_of(exercise_id))
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


def solution_text(exercise_id: str) -> str:
    """Return the code of one solution region, read from solutions/NN_*.ipynb."""
    notebook = progress.notebook_of(exercise_id)
    for path in sorted(settings.solutions_dir().glob(f"{notebook}_*.ipynb")):
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
