"""The course's five teaching diagrams, drawn as SVG by code: `course.diagram("retry-path")` shows one.

The same drawings live as files in notebooks/images/ and solutions/images/ for markdown cells
(`![...](images/retry-path.svg)`); `tools/make_learner_notebooks.py` writes them from here, and a
test fails when a committed file differs from what this code draws.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import re
from collections.abc import Callable
from pathlib import Path

from labapp.course.diagrams.lifecycle import message_lifecycle, retry_path
from labapp.course.diagrams.overview import architecture
from labapp.course.diagrams.timing import leader_election, two_clocks

#: File name -> drawing function, in the order the course meets them.
DIAGRAMS: dict[str, Callable[[], str]] = {
    "architecture.svg": architecture,
    "message-lifecycle.svg": message_lifecycle,
    "retry-path.svg": retry_path,
    "two-clocks.svg": two_clocks,
    "leader-election.svg": leader_election,
}
NAMES = tuple(name.removesuffix(".svg") for name in DIAGRAMS)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S)
_DESC = re.compile(r"<desc[^>]*>(.*?)</desc>", re.S)


@dataclasses.dataclass(frozen=True)
class Diagram:
    """One drawn diagram: its name, SVG text, title and description (the alt text)."""

    name: str
    svg: str
    title: str
    description: str

    @property
    def alt(self) -> str:
        """Return the alt text: the title, then the description."""
        return f"{self.title}. {self.description}"

    def html(self) -> str:
        """Return an <img> of the SVG with its alt text, at its own size."""
        # JupyterLab draws an image/svg+xml output as an <img> without alt text (and not at all when
        # the notebook is untrusted); HTML is preferred, so this <img> says what the picture shows.
        data = base64.b64encode(self.svg.encode("utf-8")).decode("ascii")
        size = re.search(r'width="(\d+)" height="(\d+)"', self.svg)
        width, height = size.groups() if size else ("", "")
        return (
            f'<img src="data:image/svg+xml;base64,{data}" width="{width}" height="{height}" '
            f'alt="{html.escape(self.alt)}" class="lab-diagram">'
        )

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return {"text/html": self.html(), "image/svg+xml": self.svg, "text/plain": str(self)}

    def __str__(self) -> str:
        return f"Diagram: {self.alt}"


def draw(name: str) -> Diagram:
    """Return one diagram by name, e.g. 'retry-path' (the '.svg' suffix is optional)."""
    key = name if name.endswith(".svg") else f"{name}.svg"
    if key not in DIAGRAMS:
        raise ValueError(f"no diagram {name!r}; the diagrams are {', '.join(NAMES)}")
    svg = DIAGRAMS[key]()
    title, desc = _TITLE.search(svg), _DESC.search(svg)
    return Diagram(
        key.removesuffix(".svg"),
        svg,
        html.unescape(title.group(1)) if title else "",
        html.unescape(desc.group(1)) if desc else "",
    )


def diagram(name: str) -> None:
    """Show one diagram inline in the notebook (with its alt text as the plain-text form)."""
    picture = draw(name)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        print(picture)
        return
    if get_ipython() is None:
        print(picture)
        return
    display(picture)


def write_all(folder: Path) -> list[Path]:
    """Write every diagram into folder (only files whose text changed); return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, drawing in DIAGRAMS.items():
        path = folder / filename
        text = drawing()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
