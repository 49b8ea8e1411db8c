"""course.predict() and course.predict_number(): commit, lock, explain, record, and read well as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from labapp import course, settings
from labapp.course import predictions, progress

CHOICES = {
    "1": "sqsd does not give up after one failure: it retries.",
    "3": "MaxRetries is 3 in the lab profile, so SQS delivers it three times.",
    "forever": "The RedrivePolicy stops it: after maxReceiveCount receives SQS moves it to the DLQ.",
}
QUESTION = "How many POSTs does a message get when the handler always answers 500?"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(settings.PROGRESS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def test_before_commit_the_text_fallback_asks_the_question() -> None:
    widget = course.predict("04.p1", QUESTION, CHOICES, answer="3")
    bundle = widget._repr_mimebundle_()
    assert bundle is not None and "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == (
        f"Predict (04.p1): {QUESTION} (options: 1 / 3 / forever; commit your choice in the live notebook)"
    )
    assert repr(widget) == bundle["text/plain"] and "VBox" not in repr(widget)
    assert widget.button.disabled and not widget.committed


def test_clicking_commit_locks_the_choice_explains_it_and_records_it() -> None:
    widget = course.predict("04.p1", QUESTION, CHOICES, answer="3")
    widget.control.value = "forever"
    assert not widget.button.disabled
    widget.button.click()
    assert widget.committed and widget.right is False and widget.chosen == "forever"
    assert widget.control.disabled and widget.button.disabled
    assert "✘ Not quite" in widget.result.value and "The RedrivePolicy stops it" in widget.result.value
    assert predictions.NEXT_STEP in widget.result.value
    assert widget.text().endswith(
        f'✘ Not quite: you predicted "forever". {CHOICES["forever"]} {predictions.NEXT_STEP}'
    )
    widget.control.value = "3"  # a frontend cannot change it any more, and a second commit changes nothing
    widget.commit("3")
    assert widget.chosen == "forever"
    assert progress.load_predictions()["04.p1"] == {
        "chosen": "forever",
        "correct": False,
        "when": progress.load_predictions()["04.p1"]["when"],
    }


def test_chosen_commits_at_once_for_tests_and_solution_notebooks() -> None:
    widget = course.predict("04.p1", QUESTION, CHOICES, answer="3", chosen="3")
    assert widget.committed and widget.right is True
    assert '✔ Right: you predicted "3". MaxRetries is 3' in widget.text()
    assert progress.load_predictions()["04.p1"]["correct"] is True


@pytest.mark.parametrize(
    "guess, right, explanation",
    [
        ("2", False, "low"),
        ("3.5", True, "right"),
        ("4", True, "right"),
        ("6", False, "high"),
        ("1,000", False, "high"),
    ],
)
def test_a_number_is_right_within_the_tolerance(guess: str, right: bool, explanation: str) -> None:
    widget = course.predict_number(
        "06.p1", "How long does the batch take?", answer=4, tolerance=0.5, unit="s",
        low="low", high="high", right="right", chosen=guess,
    )  # fmt: skip
    assert widget.right is right
    assert f": you predicted {float(guess.replace(',', '')):g} s. {explanation}." in widget.text()


def test_a_number_box_accepts_only_numbers() -> None:
    widget = course.predict_number("06.p1", "How long?", answer=4, tolerance=1, unit="s")
    assert (
        widget.text() == "Predict (06.p1): How long? (a number in s; commit your guess in the live notebook)"
    )
    widget.control.value = "soon"
    assert widget.button.disabled and "Type a number" in widget.result.value
    widget.control.value = "4.5"
    assert not widget.button.disabled and widget.result.value == ""
    widget.button.click()
    assert widget.right is True and widget.control.value == "4.5 s"
    assert progress.load_predictions()["06.p1"]["chosen"] == "4.5"
    assert "That is what happens." in widget.text()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"qid": "04.1"}, "qid must look like '03.p1'"),
        ({"question": " "}, "question must be a sentence"),
        ({"choices": {"only": "one"}}, "choices must be a dict of 2 to 5 options"),
        ({"choices": {str(n): "x" for n in range(6)}}, "choices must be a dict of 2 to 5 options"),
        ({"choices": {"a": "", "b": "x"}, "answer": "a"}, "maps option text to its explanation"),
        ({"answer": "4"}, "answer must be one of the choices (1 / 3 / forever)"),
        ({"chosen": "2"}, "chosen must be one of 1 / 3 / forever"),
    ],
)
def test_predict_names_what_is_wrong(kwargs: dict[str, object], words: str) -> None:
    arguments: dict[str, object] = {"qid": "04.p1", "question": QUESTION, "choices": CHOICES, "answer": "3"}
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        course.predict(**{**arguments, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, words",
    [({"tolerance": -1}, "tolerance must be 0 or more"), ({"answer": "4"}, "answer must be a number"),
     ({"chosen": "many"}, "chosen must be a number")],
)  # fmt: skip
def test_predict_number_names_what_is_wrong(kwargs: dict[str, object], words: str) -> None:
    arguments: dict[str, object] = {"qid": "06.p1", "question": "How long?", "answer": 4, "tolerance": 1}
    with pytest.raises(ValueError, match=words):
        course.predict_number(**{**arguments, **kwargs})  # type: ignore[arg-type]


def test_a_prediction_in_a_solution_run_is_shown_but_not_recorded(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.SOLUTIONS_DIR_ENV, raising=False)
    monkeypatch.chdir(settings.solutions_dir())
    widget = course.predict("04.p1", QUESTION, CHOICES, answer="3", chosen="3")
    assert widget.committed and "✔ Right" in widget.result.value
    assert not (home / progress.FILE_NAME).exists()
