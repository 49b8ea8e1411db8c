"""The five course diagrams: the committed SVGs are what the code draws, and each one carries its alt text."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import pytest

from labapp import course
from labapp.course import diagrams

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_learner_notebooks as generator  # noqa: E402


def test_the_committed_svgs_are_what_the_code_draws() -> None:
    stale = [str(path.relative_to(ROOT)) for path in generator.stale_images()]
    assert stale == [], f"out of date: {stale}; run `python tools/make_learner_notebooks.py`"


def test_the_image_folders_hold_only_the_diagrams() -> None:
    for folder in generator.IMAGE_FOLDERS:
        assert sorted(path.name for path in folder.glob("*.svg")) == sorted(diagrams.DIAGRAMS)


@pytest.mark.parametrize("name", diagrams.NAMES)
def test_each_diagram_is_an_accessible_svg_of_one_width(name: str) -> None:
    picture = diagrams.draw(name)
    assert picture.svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="860" ')
    assert f'aria-labelledby="{name}-title {name}-desc"' in picture.svg
    assert picture.title and len(picture.description) > 100
    ids = re.findall(r'id="([^"]+)"', picture.svg)
    assert all(i.startswith(f"{name}-") for i in ids), (
        "ids carry the diagram's name, so inline SVGs never clash"
    )
    bundle = picture._repr_mimebundle_()
    assert bundle["image/svg+xml"] == picture.svg
    assert bundle["text/plain"] == f"Diagram: {picture.title}. {picture.description}"
    assert bundle["text/html"].startswith('<img src="data:image/svg+xml;base64,')
    assert f'alt="{html.escape(picture.alt)}"' in bundle["text/html"] and 'width="860"' in bundle["text/html"]


def test_the_facts_the_drawings_state() -> None:
    assert "maxReceiveCount = MaxRetries (default 10)" in diagrams.draw("architecture").svg
    assert "ErrorVisibilityTimeout (default 2 s)" in diagrams.draw("retry-path").svg
    clocks = diagrams.draw("two-clocks").svg
    assert (
        "InactivityTimeout: waits up to 299 s" in clocks and "VisibilityTimeout: hidden for 300 s" in clocks
    )
    assert "elasticbeanstalk scheduled job" in diagrams.draw("leader-election.svg").svg


def test_an_unknown_diagram_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="the diagrams are architecture, message-lifecycle, retry-path"):
        course.diagram("dlq")


def test_diagram_prints_its_alt_text_where_no_kernel_runs(capsys: pytest.CaptureFixture[str]) -> None:
    course.diagram("two-clocks")
    assert capsys.readouterr().out.startswith("Diagram: Two clocks run during one POST.")
