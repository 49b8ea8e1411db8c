"""The notebooks: learner copies match their solutions, follow the house shape, and run top to bottom.

The solution notebooks themselves are checked by nbval (outputs compared), outside this file:
    pytest --nbval solutions --nbval-sanitize-with solutions/sanitize.cfg -p no:randomly
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

import nbformat
import pytest

import labapp.course.checks
from labapp.course import progress
from labapp.course.checks import core as checks
from labapp.runtime.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_learner_notebooks as generator  # noqa: E402

SOLUTIONS = generator.solution_paths()
LEARNERS = [generator.learner_path(path) for path in SOLUTIONS]
MAX_CELL_LINES = 15  # lines with code or comments; blank lines do not count
MAX_PREFLIGHT_LINES = 3


def _names(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def _load_exercise_modules() -> None:
    """Import every notebook's checks, so all exercises are registered."""
    for module in pkgutil.iter_modules(labapp.course.checks.__path__):
        if module.name.startswith("nb"):
            importlib.import_module(f"labapp.course.checks.{module.name}")


def _code_cells(path: Path) -> list[nbformat.NotebookNode]:
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


# -- generation ------------------------------------------------------------------------------------
def test_there_are_solution_notebooks() -> None:
    assert SOLUTIONS, "solutions/ has no NN_*.ipynb notebooks"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_names(SOLUTIONS))
def test_learner_copy_is_up_to_date(solution: Path) -> None:
    target = generator.learner_path(solution)
    assert target.exists(), f"{target.name} is missing: run `python tools/make_learner_notebooks.py`."
    assert target.read_text(encoding="utf-8") == generator.expected_learner_text(solution), (
        f"notebooks/{target.name} is out of date: run `python tools/make_learner_notebooks.py`."
    )


def test_no_learner_copy_without_a_solution() -> None:
    orphans = sorted(
        {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")} - {p.name for p in SOLUTIONS}
    )
    assert not orphans, f"learner notebooks without a solution: {orphans}"


@pytest.mark.parametrize("learner", LEARNERS, ids=_names(LEARNERS))
def test_learner_copy_holds_no_solution_and_no_output(learner: Path) -> None:
    for cell in _code_cells(learner):
        assert "BEGIN SOLUTION" not in cell.source and "NBVAL_" not in cell.source
        assert cell.outputs == [] and cell.execution_count is None


def test_split_solution_replaces_regions_with_stubs() -> None:
    source = "\n".join(
        [
            "def f(x):",
            "    # BEGIN SOLUTION 99.1",
            "    return x * 2",
            "    # END SOLUTION",
            "# BEGIN SOLUTION 99.2",
            "# STUB: answer = ...  # a number",
            "answer = 42",
            "# END SOLUTION",
        ]
    )
    learner, solutions = checks.split_solution(source)
    assert learner == "def f(x):\n    ...  # your code here\nanswer = ...  # a number"
    assert solutions == {"99.1": "# the body of the function above\nreturn x * 2", "99.2": "answer = 42"}


@pytest.mark.parametrize("broken", ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION"])
def test_split_solution_rejects_unbalanced_markers(broken: str) -> None:
    with pytest.raises(ValueError):
        checks.split_solution(broken)


def test_every_exercise_has_one_solution_region_and_every_region_an_exercise() -> None:
    _load_exercise_modules()
    regions: dict[str, str] = {}
    for path in SOLUTIONS:
        for cell in _code_cells(path):
            for exercise_id in checks.split_solution(cell.source)[1]:
                assert exercise_id not in regions, f"{exercise_id} has two solution regions"
                assert exercise_id.startswith(path.name[:2]), f"{exercise_id} lives in {path.name}"
                regions[exercise_id] = path.name
    notebooks = {path.name[:2] for path in SOLUTIONS}
    registered = {eid for eid in checks.REGISTRY if eid[:2] in notebooks}
    assert set(regions) - set(checks.REGISTRY) == set(), "solution regions without a registered check"
    assert registered - set(regions) == set(), "registered exercises without a solution region"
    for exercise_id in regions:
        assert not checks.solution_text(exercise_id).startswith("(the solution is in")


# -- the house shape ---------------------------------------------------------------------------------
@pytest.mark.parametrize("solution", SOLUTIONS, ids=_names(SOLUTIONS))
def test_notebook_shape(solution: Path) -> None:
    nb = nbformat.read(solution, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "start with a title"
    for heading in ("You will learn", "You need", "Time"):
        assert heading in first.source, f"the first cell names {heading!r}"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    preflight = code[0].source.strip().splitlines()
    assert len(preflight) <= MAX_PREFLIGHT_LINES and "start(" in code[0].source, "a short preflight first"
    assert code[-1].source.strip().endswith("lab.stop()"), "the last cell stops the lab"
    lengths = [sum(1 for line in c.source.splitlines() if line.strip()) for c in code]
    long_cells = [n for n in lengths if n > MAX_CELL_LINES]
    assert not long_cells, f"cells longer than {MAX_CELL_LINES} lines: move the logic into labapp"
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    assert "## Summary" in text and "What's next" in text


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_names(SOLUTIONS))
def test_solutions_have_stored_outputs_for_nbval(solution: Path) -> None:
    code = _code_cells(solution)
    assert all(cell.execution_count is not None for cell in code), (
        f"{solution.name} has cells that never ran: "
        f"`python tools/make_learner_notebooks.py --refresh-outputs solutions/{solution.name}`"
    )


def test_claims_are_covered_across_the_course() -> None:
    text = "\n".join(cell.source for path in SOLUTIONS for cell in nbformat.read(path, as_version=4).cells)
    for phrase in (
        "SQSMessageBody",
        "MaxConcurrentAPIConnections",
        "MimetypeJSON",
        "60 s",
        "4xx",
        "202",
        "maximum receive count",
        "30 s",
        "QueueDepth",
        "eb-engine.log",
        "one tier per environment",
        "sqs:SendMessage",
    ):
        assert phrase in text, f"no notebook mentions {phrase!r}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_names(SOLUTIONS))
def test_every_claim_is_predicted_before_it_is_checked(solution: Path) -> None:
    """After a quoted claim, a prediction comes before the result is told (or the next section starts)."""
    cells = nbformat.read(solution, as_version=4).cells
    unpredicted = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown" or "> **Claim**" not in cell.source:
            continue
        predicted = False
        for after in cells[index + 1 :]:
            if after.cell_type == "code" and "course.predict" in after.source:
                predicted = True
                break
            if after.cell_type == "markdown" and ("**Result" in after.source or after.source.startswith("#")):
                break
        if not predicted:
            unpredicted.append(cell.source.splitlines()[0])
    assert unpredicted == [], f"{solution.name}: claims with no prediction first: {unpredicted}"


# -- progress ------------------------------------------------------------------------------------------
def test_progress_records_the_last_result_and_lists_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    progress.record("02.1", "not attempted")
    progress.record("02.1", "correct", "well done")
    progress.record("01.2", "not yet", "almost")
    rows = progress.table()
    assert [(r.notebook, r.exercise, r.status) for r in rows] == [
        ("01 Queues and messages", "01.2", "not yet"),
        ("02 The daemon and the POST", "02.1", "correct"),
    ]
    saved = json.loads((tmp_path / "progress.json").read_text())
    assert saved["exercises"]["02.1"]["first_correct"]
    assert "1 of 2" in progress.format_table()


def test_a_check_that_crashes_is_reported_not_raised() -> None:
    def checker(answers: checks.Answers) -> str:
        raise RuntimeError("boom")

    outcome = checks.run_check(checks.Exercise("99.9", "t", checker, ()), {})
    assert (outcome.status, outcome.reason) == ("not yet", "your code raised RuntimeError: boom")


# -- every learner notebook runs ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("learner", LEARNERS, ids=_names(LEARNERS))
def test_learner_notebook_runs_and_checks_say_not_attempted(
    learner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    nb = nbformat.read(learner, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(learner.parent)}}
    )
    client.execute()  # a cell that raises fails the test with the cell and its traceback
    for cell in nb.cells:
        if cell.cell_type != "code" or not any(
            line.strip().endswith(".check()") for line in cell.source.splitlines()
        ):
            continue
        # A check shows a box: its words are the display's text/plain (a stream's text, printed).
        text = "".join(
            output.get("text", "") or output.get("data", {}).get("text/plain", "") for output in cell.outputs
        )
        assert "Not attempted" in text, f"a check in {learner.name} said: {text.strip()!r}"
