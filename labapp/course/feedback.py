"""What a learner sees after `ex.check()`, `ex.hint()`, `ex.solution()` or a prediction: one box each.

Each box is a `Feedback` whose mimebundle holds HTML for JupyterLab and one plain sentence for
terminals, saved notebooks and nbval. The HTML reads without colour (an icon and a word lead every
box), and in light and dark themes: colours come from JupyterLab's CSS variables, each written
after a neutral fallback, so a sanitiser that drops `var()` still leaves a readable box. This
module only renders; `show()` publishes, and imports IPython only when it runs.
"""

from __future__ import annotations

import dataclasses
import enum
import html


class Tone(str, enum.Enum):
    """What kind of feedback a box gives; it picks the accent colour, never the only signal."""

    CORRECT = "correct"
    NOT_YET = "not yet"
    NOT_ATTEMPTED = "not attempted"
    HINT = "hint"
    SOLUTION = "solution"

    def __str__(self) -> str:
        return self.value


#: The words that open a result, as text: they carry the meaning when colour does not show.
LABELS = {
    Tone.CORRECT: "✔ Correct",
    Tone.NOT_YET: "✘ Not yet",
    Tone.NOT_ATTEMPTED: "… Not attempted",
}
RIGHT, NOT_QUITE = "✔ Right", "✘ Not quite"

# (JupyterLab variable, fallback): the fallbacks keep at least 4.5:1 against the box's background.
_ACCENT = {
    Tone.CORRECT: ("--jp-success-color1", "#1a7f37"),
    Tone.NOT_YET: ("--jp-error-color1", "#cf222e"),
    Tone.NOT_ATTEMPTED: ("--jp-warn-color1", "#9a6700"),
    Tone.HINT: ("--jp-info-color1", "#0969da"),
    Tone.SOLUTION: ("--jp-brand-color1", "#6639ba"),
}
_BOX = (
    "border:1px solid #d0d7de;border-color:var(--jp-border-color1,#d0d7de);"
    "border-left:6px solid {accent};border-left-color:var({var},{accent});"
    "background:#f6f8fa;background:var(--jp-layout-color2,#f6f8fa);"
    "color:#1f2328;color:var(--jp-content-font-color1,#1f2328);"
    "padding:8px 12px;margin:6px 0;border-radius:4px;line-height:1.45"
)
MUTED = "color:#57606a;color:var(--jp-content-font-color2,#57606a)"
_PRE = (
    "background:#ffffff;background:var(--jp-layout-color0,#ffffff);"
    "color:#1f2328;color:var(--jp-content-font-color1,#1f2328);"
    "border:1px solid #d0d7de;border-color:var(--jp-border-color2,#d0d7de);"
    "padding:8px;margin:6px 0 0 0;overflow-x:auto;white-space:pre"
)


@dataclasses.dataclass(frozen=True)
class Feedback:
    """One box: a bold label, a muted heading, a body, a muted note, optional code; and its plain text.

    With `summary`, the body and the code sit behind a click (an HTML <details>).
    """

    tone: Tone
    label: str
    plain: str
    heading: str = ""
    body: str = ""
    note: str = ""
    code: str = ""
    summary: str = ""

    def html(self) -> str:
        """Return the box as HTML (every text escaped)."""
        var, accent = _ACCENT[self.tone]
        top = f"<strong>{_e(self.label)}</strong>"
        if self.heading:
            top += f' <span style="{MUTED}">· {_e(self.heading)}</span>'
        inner = f"<div>{_e(self.body)}</div>" if self.body else ""
        if self.note:
            inner += f'<div style="{MUTED}">{_e(self.note)}</div>'
        if self.code:
            inner += f'<pre style="{_PRE}"><code>{_e(self.code)}</code></pre>'
        if self.summary:
            inner = f'<details><summary style="cursor:pointer">{_e(self.summary)}</summary>{inner}</details>'
        role = "note" if self.tone in (Tone.HINT, Tone.SOLUTION) else "status"
        style = _BOX.format(var=var, accent=accent)
        opening = (
            f'<div class="lab-feedback lab-feedback-{self.tone.name.lower()}" role="{role}" style="{style}">'
        )
        return f"{opening}<div>{top}</div>{inner}</div>"

    def bundle(self) -> dict[str, str]:
        """Return the mimebundle: HTML for JupyterLab, the plain sentence for everything else."""
        return {"text/html": self.html(), "text/plain": self.plain}

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return self.bundle()

    def __str__(self) -> str:
        return self.plain


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def full_stop(text: str) -> str:
    """Return text ending in a full stop (or the mark it already ends with)."""
    text = text.strip()
    return text if not text or text[-1] in ".!?:" else f"{text}."


def result(exercise_id: str, title: str, status: str, reason: str) -> Feedback:
    """Return the box of one check: status is 'correct', 'not yet' or 'not attempted'."""
    tone = Tone(status)
    label = LABELS[tone]
    heading = f"{exercise_id} {title}".strip()
    body = full_stop(reason)
    return Feedback(tone, label, f"{label} — {heading}: {body}", heading=heading, body=body)


def hint(exercise_id: str, level: int, total: int, text: str) -> Feedback:
    """Return hint `level` of `total` for an exercise, naming the next step."""
    label = f"Hint {level} of {total}"
    more = (
        f"Next: .hint({level + 1})."
        if level < total
        else "That is the last hint; .solution() shows the answer."
    )
    body = full_stop(text)
    plain = f"{label} for {exercise_id}: {body} {more}"
    return Feedback(Tone.HINT, label, plain, heading=exercise_id, body=body, note=more)


def no_hint(exercise_id: str) -> Feedback:
    """Return the box for an exercise that has no hints."""
    plain = f"No hint for {exercise_id}; try .solution()."
    return Feedback(Tone.HINT, "No hint", plain, heading=exercise_id, body="Try .solution().")


def solution(exercise_id: str, code: str) -> Feedback:
    """Return the solution behind a click; the plain text holds the code, for terminals."""
    return Feedback(
        Tone.SOLUTION,
        f"Solution for {exercise_id}",
        f"Solution for {exercise_id} (shown when you open it in the notebook):\n{code}",
        code=code,
        summary=f"Show the solution for {exercise_id}",
    )


def prediction(chosen: str, right: bool, explanation: str, next_step: str) -> Feedback:
    """Return the box after a committed prediction: right or not, why, and what to do next."""
    label = RIGHT if right else NOT_QUITE
    body = full_stop(explanation)
    return Feedback(
        Tone.CORRECT if right else Tone.NOT_YET,
        label,
        f"{label}: you predicted {chosen}. {body} {next_step}".strip(),
        heading=f"you predicted {chosen}",
        body=body,
        note=next_step,
    )


def show(item: Feedback) -> None:
    """Display a box in the notebook, or print its plain text where no IPython kernel runs."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        print(item.plain)
        return
    if get_ipython() is None:
        print(item.plain)
        return
    display(item.bundle(), raw=True)
