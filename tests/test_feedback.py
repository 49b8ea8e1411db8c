"""Feedback boxes: what `ex.check()`, `ex.hint()` and `ex.solution()` publish, as HTML and as one sentence.

The last test runs a real kernel with no frontend, as nbval does: nothing blocks, and each output
is a mimebundle whose text/plain reads well.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from labapp.course import feedback
from labapp.course.checks import core

EXERCISE = core.Exercise("99.1", "Answer with a number", lambda answers: "it is a number", ("Use int.", "42"))


def test_each_result_leads_with_an_icon_and_a_word() -> None:
    texts = {status: feedback.result("03.1", "A handler", status, "why") for status in core.Status}
    assert texts[core.CORRECT].plain == "✔ Correct — 03.1 A handler: why."
    assert texts[core.NOT_YET].plain == "✘ Not yet — 03.1 A handler: why."
    assert texts[core.NOT_ATTEMPTED].plain == "… Not attempted — 03.1 A handler: why."
    for status, box in texts.items():
        assert f"<strong>{feedback.LABELS[feedback.Tone(status.value)]}</strong>" in box.html()
        assert f"lab-feedback-{status.name.lower()}" in box.html()


def test_boxes_differ_by_accent_and_keep_a_plain_colour_before_each_variable() -> None:
    accents = set()
    for status in core.Status:
        html = feedback.result("03.1", "t", status, "r").html()
        accent = re.search(r"border-left:6px solid (#[0-9a-f]{6});border-left-color:var\(--jp-", html)
        assert accent, html
        accents.add(accent.group(1))
        # A sanitiser that drops var() keeps the plain colour written just before it.
        assert re.search(r"background:#[0-9a-f]{6};background:var\(--jp-layout-color2,", html)
        assert re.search(r";color:#[0-9a-f]{6};color:var\(--jp-content-font-color1,", html)
    assert len(accents) == 3


def test_html_is_escaped() -> None:
    box = feedback.result("03.1", "<b>", "not yet", "use <script> & friends")
    assert "<script>" not in box.html() and "&lt;script&gt; &amp; friends." in box.html()


def test_hints_say_which_and_what_next() -> None:
    assert feedback.hint("03.1", 1, 2, "look at the headers").plain == (
        "Hint 1 of 2 for 03.1: look at the headers. Next: .hint(2)."
    )
    last = feedback.hint("03.1", 2, 2, "req.header('X')")
    assert last.plain.endswith("That is the last hint; .solution() shows the answer.")
    assert "<strong>Hint 2 of 2</strong>" in last.html()


def test_the_solution_sits_behind_a_click_and_in_full_as_text() -> None:
    box = feedback.solution("03.1", 'def f():\n    return "<ok>"')
    assert (
        box.plain
        == 'Solution for 03.1 (shown when you open it in the notebook):\ndef f():\n    return "<ok>"'
    )
    html = box.html()
    assert "<details><summary" in html and ">Show the solution for 03.1</summary>" in html
    assert '<pre style="' in html and "return &quot;&lt;ok&gt;&quot;" not in html
    assert 'return "&lt;ok&gt;"' in html and html.index("<summary") < html.index("<pre")


def test_bound_exercise_prints_the_sentence_where_no_kernel_runs(capsys: pytest.CaptureFixture[str]) -> None:
    ex = core.BoundExercise(EXERCISE, {})
    ex.hint()
    ex.hint()
    ex.solution()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Hint 1 of 2 for 99.1: Use int. Next: .hint(2)."
    assert out[1].startswith("Hint 2 of 2 for 99.1: 42.")
    assert out[2] == "Solution for 99.1 (shown when you open it in the notebook):"


KERNEL_CELLS = [
    "from labapp import course, widgets\n"
    "from labapp.course.checks import core\n"
    "ex = core.BoundExercise(core.Exercise('99.1', 'Answer with a number', lambda a: 'it is a number', ('Use int.',)), {})",
    "ex.check()",
    "ex.hint()",
    "ex.solution()",
    "course.predict('04.p1', 'How many POSTs?', {'1': 'No: it retries.', '3': 'Yes: MaxRetries.'}, answer='3')",
    "course.predict('04.p2', 'How many POSTs?', {'1': 'No: it retries.', '3': 'Yes: MaxRetries.'}, answer='3', chosen='1')",
    "widgets.dashboard(None)",
    "widgets.scaling_tuner()",
    "course.diagram('retry-path')",
]


@pytest.mark.timeout(120)
def test_in_a_kernel_without_a_frontend_every_output_is_a_readable_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in KERNEL_CELLS])
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    plain = []
    for cell in nb.cells[1:]:
        (output,) = cell.outputs
        assert output.output_type in ("display_data", "execute_result"), output
        plain.append(output.data["text/plain"])
    check, hint, solution, ask, answered, board, tuner, picture = plain
    assert check == "✔ Correct — 99.1 Answer with a number: it is a number."
    assert "lab-feedback-correct" in nb.cells[1].outputs[0].data["text/html"]
    assert hint == "Hint 1 of 1 for 99.1: Use int. That is the last hint; .solution() shows the answer."
    assert solution.startswith(
        "Solution for 99.1 (shown when you open it in the notebook):\n(the solution is in"
    )
    assert ask == "Predict (04.p1): How many POSTs? (options: 1 / 3; commit your choice in the live notebook)"
    assert answered.startswith(
        'Predict (04.p2): How many POSTs? ✘ Not quite: you predicted "1". No: it retries.'
    )
    assert board.startswith("The dashboard needs a running lab")
    assert tuner == "Scaling tuner on the simulator (move the sliders in the live notebook)."
    assert picture.startswith("Diagram: Retries and the dead-letter queue. SQS counts every receive")
    assert "image/svg+xml" in nb.cells[-1].outputs[0].data
