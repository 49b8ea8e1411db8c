"""Predict, then run: a question before the cell that shows the answer, as the Carpentries ask it.

    course.predict("04.p1", "How many POSTs does a message that always fails get?",
                   {"1": "sqsd does not give up after one failure ...",
                    "3": "Right: MaxRetries is 3 in the lab profile ...",
                    "forever": "The RedrivePolicy stops it ..."}, answer="3")
    course.predict_number("06.p1", "How long does the batch take?", answer=4, tolerance=1, unit="s",
                          low="...", high="...", right="...")

Each returns a widget: the question, the options (or a number box) and a "Commit my prediction"
button. Committing locks the choice, explains the option picked, says to run the next cell, and
records the prediction in progress.json. `chosen=` commits at once (tests, solution notebooks).
Saved notebooks and nbval see one readable line instead of the widget.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from labapp.course import feedback, progress

MIN_CHOICES, MAX_CHOICES = 2, 5
PREDICTION_ID = re.compile(r"\d\d\.p\d+")
NEXT_STEP = "Now run the next cell and see what happens."
COMMIT = "Commit my prediction"
DEFAULT_LOW = "That is lower than what happens."
DEFAULT_HIGH = "That is higher than what happens."
DEFAULT_RIGHT = "That is what happens."


@dataclasses.dataclass(frozen=True)
class Choices:
    """A multiple-choice question: each option with the explanation shown when it is picked."""

    question: str
    explanations: Mapping[str, str]
    answer: str

    def options(self) -> list[str]:
        """Return the options in the order the author wrote them."""
        return list(self.explanations)

    def parse(self, chosen: Any) -> str:
        """Return the option `chosen` names, or raise ValueError naming the options."""
        text = str(chosen)
        if text not in self.explanations:
            raise ValueError(f"chosen must be one of {' / '.join(self.options())}; got {chosen!r}")
        return text

    def judge(self, chosen: Any) -> tuple[bool, str]:
        """Return (right, explanation) for a parsed option."""
        return chosen == self.answer, self.explanations[chosen]

    def describe(self, chosen: Any) -> str:
        """Return how the learner's choice is named back to them."""
        return f'"{chosen}"'

    def prompt(self) -> str:
        """Return what the live notebook asks for, in the plain-text form."""
        return f"options: {' / '.join(self.options())}; commit your choice in the live notebook"


@dataclasses.dataclass(frozen=True)
class Number:
    """A numeric question: a guess is right within answer ± tolerance, else too low or too high."""

    question: str
    answer: float
    tolerance: float
    unit: str
    low: str
    high: str
    right: str

    def parse(self, chosen: Any) -> float:
        """Return the guess as a number, or raise ValueError."""
        if isinstance(chosen, bool):
            raise ValueError(f"chosen must be a number; got {chosen!r}")
        try:
            value = float(str(chosen).strip().replace(",", ""))
        except ValueError:
            raise ValueError(f"chosen must be a number; got {chosen!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"chosen must be a finite number; got {chosen!r}")
        return value

    def judge(self, chosen: Any) -> tuple[bool, str]:
        """Return (right, explanation): low, high or right."""
        if chosen < self.answer - self.tolerance:
            return False, self.low
        if chosen > self.answer + self.tolerance:
            return False, self.high
        return True, self.right

    def describe(self, chosen: Any) -> str:
        """Return the guess with its unit, e.g. '4 s'."""
        return f"{chosen:g} {self.unit}".strip()

    def prompt(self) -> str:
        """Return what the live notebook asks for, in the plain-text form."""
        what = f"a number in {self.unit}" if self.unit else "a number"
        return f"{what}; commit your guess in the live notebook"


Question = Choices | Number


class Prediction(w.VBox):
    """The question, its options or number box, the commit button, and the explanation once committed."""

    def __init__(self, qid: str, question: Question) -> None:
        self.qid = qid
        self.question = question
        self.chosen: str | float | None = None
        self.right: bool | None = None
        self.outcome: feedback.Feedback | None = None
        self.header = w.HTML(_header_html(qid, question.question))
        self.control: w.Widget
        if isinstance(question, Choices):
            self.control = w.RadioButtons(
                options=question.options(), value=None, layout=w.Layout(width="auto")
            )
        else:
            unit = f" ({question.unit})" if question.unit else ""
            self.control = w.Text(placeholder=f"your guess{unit}", layout=w.Layout(width="220px"))
        self.button = w.Button(description=COMMIT, icon="check", button_style="primary", disabled=True)
        self.button.layout.width = "max-content"  # as wide as its words, not the whole cell
        self.result = w.HTML()
        self.control.observe(self._changed, names="value")
        self.button.on_click(lambda _: self.commit())
        super().__init__([self.header, self.control, self.button, self.result])
        self.add_class("lab-predict")

    @property
    def committed(self) -> bool:
        """True once the prediction is locked."""
        return self.outcome is not None

    def _changed(self, _change: Any = None) -> None:
        if self.committed:
            return
        value = self.control.value
        self.button.disabled, self.result.value = True, ""
        if value in (None, ""):
            return
        try:
            self.question.parse(value)
        except ValueError:
            self.result.value = _muted("Type a number, e.g. 3 or 2.5.")
            return
        self.button.disabled = False

    def commit(self, chosen: Any = None) -> feedback.Feedback:
        """Lock the prediction (the control's value, or `chosen`), explain it and record it once."""
        if self.outcome is not None:
            return self.outcome
        parsed = self.question.parse(self.control.value if chosen is None else chosen)
        right, explanation = self.question.judge(parsed)
        named = self.question.describe(parsed)
        self.chosen, self.right = parsed, right
        self.outcome = feedback.prediction(named, right, explanation, NEXT_STEP)
        self.control.value = parsed if isinstance(self.question, Choices) else named
        self.control.disabled = True
        self.button.disabled = True
        self.button.description = "Prediction committed"
        note = ""
        try:
            progress.record_prediction(self.qid, parsed if isinstance(parsed, str) else f"{parsed:g}", right)
        except OSError as exc:
            note = _muted(f"(could not save your prediction: {exc})")
        self.result.value = self.outcome.html() + note
        return self.outcome

    def text(self) -> str:
        """Return the one readable line saved notebooks, terminals and nbval show."""
        asked = f"Predict ({self.qid}): {self.question.question}"
        if self.outcome is None:
            return f"{asked} ({self.question.prompt()})"
        return f"{asked} {self.outcome.plain}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kwargs)
        if data is not None:
            data["text/plain"] = self.text()
        return data

    def __repr__(self) -> str:
        return self.text()


def _header_html(qid: str, question: str) -> str:
    return (
        f'<div><strong>Predict</strong> <span style="{feedback.MUTED}">· {html.escape(qid)}</span></div>'
        f"<div>{html.escape(question, quote=False)}</div>"
    )


def _muted(text: str) -> str:
    return f'<div style="{feedback.MUTED}">{html.escape(text, quote=False)}</div>'


def _check_id(qid: str, question: str) -> None:
    if not isinstance(qid, str) or not PREDICTION_ID.fullmatch(qid):
        raise ValueError(f"qid must look like '03.p1' (notebook, '.p', number); got {qid!r}")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a sentence; got an empty one")


def predict(
    qid: str, question: str, choices: Mapping[str, str], answer: str, *, chosen: str | None = None
) -> Prediction:
    """Ask a multiple-choice prediction: `choices` maps each option to the explanation shown when picked."""
    _check_id(qid, question)
    if not isinstance(choices, Mapping) or not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
        raise ValueError(f"choices must be a dict of {MIN_CHOICES} to {MAX_CHOICES} options; got {choices!r}")
    for option, explanation in choices.items():
        if not isinstance(option, str) or not isinstance(explanation, str) or not explanation.strip():
            raise ValueError(f"choices maps option text to its explanation; {option!r} has {explanation!r}")
    if answer not in choices:
        raise ValueError(f"answer must be one of the choices ({' / '.join(choices)}); got {answer!r}")
    widget = Prediction(qid, Choices(question, dict(choices), answer))
    if chosen is not None:
        widget.commit(chosen)
    return widget


def predict_number(
    qid: str,
    question: str,
    answer: float,
    tolerance: float,
    unit: str = "",
    low: str = DEFAULT_LOW,
    high: str = DEFAULT_HIGH,
    right: str = DEFAULT_RIGHT,
    *,
    chosen: float | str | None = None,
) -> Prediction:
    """Ask for a number: a guess within answer ± tolerance is right; `low`/`high`/`right` explain each case."""
    _check_id(qid, question)
    for name, value in (("answer", answer), ("tolerance", tolerance)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number; got {value!r}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be 0 or more; got {tolerance!r}")
    widget = Prediction(qid, Number(question, float(answer), float(tolerance), unit, low, high, right))
    if chosen is not None:
        widget.commit(chosen)
    return widget
