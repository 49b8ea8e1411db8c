"""progress.json: exercises and predictions side by side, `labapp progress`, and runs that must not count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labapp import settings
from labapp.cli import main
from labapp.course import progress


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lab home, with recording on and the working folder outside solutions/."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(settings.PROGRESS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def _saved(home: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((home / progress.FILE_NAME).read_text(encoding="utf-8"))
    return data


def test_predictions_have_their_own_section_and_keep_the_exercises(home: Path) -> None:
    progress.record("03.1", "correct", "well done")
    assert progress.record_prediction("03.p1", "3", True)
    assert progress.record_prediction("04.p1", "forever", False)
    progress.record("03.2", "not yet", "almost")  # a later check must not drop the predictions
    saved = _saved(home)
    assert set(saved) == {"version", "exercises", "predictions"}
    assert sorted(progress.load()) == ["03.1", "03.2"]
    predictions = progress.load_predictions()
    assert predictions["03.p1"]["chosen"] == "3" and predictions["03.p1"]["correct"] is True
    assert predictions["04.p1"]["correct"] is False and predictions["04.p1"]["when"]


def test_the_last_commit_of_a_prediction_wins(home: Path) -> None:
    progress.record_prediction("03.p1", "1", False)
    progress.record_prediction("03.p1", "3", True)
    assert progress.load_predictions()["03.p1"]["chosen"] == "3"
    assert progress.predictions_line() == "1 of 1 prediction right."


def test_labapp_progress_shows_predictions_under_the_table(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    progress.record("03.1", "correct")
    for n, right in enumerate([True, True, False, True, False], start=1):
        progress.record_prediction(f"03.p{n}", "x", right)
    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 checked exercises correct." in out
    assert out.rstrip().endswith("3 of 5 predictions right.")
    assert out.index("03.1") < out.index("3 of 5 predictions right.")


def test_predictions_alone_still_print_a_table_line(home: Path) -> None:
    progress.record_prediction("03.p1", "x", False)
    assert progress.format_table().splitlines() == [
        "No exercise checked yet: run a check cell, e.g. `ex.check()` in notebook 01.",
        "0 of 1 prediction right.",
    ]


def test_an_old_file_without_predictions_still_loads(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    old = {"version": 1, "exercises": {"01.1": {"status": "correct", "reason": "", "when": "t"}}}
    (home / progress.FILE_NAME).write_text(json.dumps(old), encoding="utf-8")
    assert progress.load_predictions() == {} and progress.predictions_line() == ""
    progress.record_prediction("01.p1", "a", True)
    assert sorted(progress.load()) == ["01.1"]


def test_lab_progress_off_writes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.PROGRESS_ENV, "off")
    assert progress.not_recorded_because() == "LAB_PROGRESS=off"
    assert progress.record("03.1", "correct") is False
    assert progress.record_prediction("03.p1", "3", True) is False
    assert not (home / progress.FILE_NAME).exists()


def test_a_kernel_in_the_solutions_folder_writes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # nbval and --refresh-outputs run each solution notebook with its folder as the working folder.
    monkeypatch.delenv(settings.SOLUTIONS_DIR_ENV, raising=False)
    monkeypatch.chdir(settings.solutions_dir())
    assert progress.not_recorded_because() == "this kernel runs a notebook from solutions/"
    assert progress.record("03.1", "correct") is False
    assert progress.record_prediction("03.p1", "3", True) is False
    assert not (home / progress.FILE_NAME).exists()


def test_a_folder_named_by_lab_solutions_dir_counts_too(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    solutions = tmp_path / "my-solutions"
    (solutions / "sub").mkdir(parents=True)
    monkeypatch.setenv(settings.SOLUTIONS_DIR_ENV, str(solutions))
    monkeypatch.chdir(solutions / "sub")
    assert progress.record("03.1", "correct") is False
    monkeypatch.chdir(tmp_path)  # the learner's notebooks/ folder, say
    assert progress.record("03.1", "correct") is True
    assert progress.load()["03.1"]["status"] == "correct"
