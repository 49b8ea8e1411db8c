"""The predictions of notebooks 00-02 live in their props modules, so a cell does not show the answer."""

from __future__ import annotations

from typing import Any

import pytest

from labapp import course
from labapp.course import nb00, nb01, nb02

PREDICTIONS = {
    f"{module.__name__.rsplit('.', 1)[1]}.{name}": getattr(module, name)
    for module in (nb00, nb01, nb02)
    for name in module.__all__
    if isinstance(getattr(module, name), dict)
}


def test_every_notebook_has_its_predictions() -> None:
    assert sorted(ask["qid"] for ask in PREDICTIONS.values()) == [
        "00.p1", "01.p1", "01.p2", "01.p3", "01.p4", "02.p1", "02.p2",
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(PREDICTIONS))
def test_a_prediction_has_a_right_answer_and_its_own_word_for_each_wrong_one(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_PROGRESS", "off")
    ask: dict[str, Any] = PREDICTIONS[name]
    explanations = list(ask["choices"].values())
    assert len(set(explanations)) == len(explanations) >= 3
    for option in ask["choices"]:
        widget = course.predict(**ask, chosen=option)
        assert widget.right is (option == ask["answer"])
        assert ask["choices"][option] in widget.text()
        widget.close()
