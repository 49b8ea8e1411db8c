"""Every widget's text/plain is one readable sentence, never "VBox(children=...)" (saved notebooks, nbval)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from labapp import widgets
from labapp.course.lab import Lab

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def lab(emulator: Any) -> Iterator[Lab]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ENDPOINT_URL", emulator.url)
        running = Lab(f"txt-{uuid.uuid4().hex[:6]}").start()
        try:
            yield running
        finally:
            running.stop()


def _plain(widget: Any) -> str:
    bundle = widget._repr_mimebundle_()
    assert WIDGET_VIEW in bundle, "the live widget must still be there for JupyterLab"
    text: str = bundle["text/plain"]
    assert text == repr(widget)
    assert "children=" not in text and "(" in text and text.endswith(".")
    return text


@pytest.mark.parametrize(
    "make, words",
    [
        (widgets.dashboard, "Live dashboard of {queue}: queue depths, deliveries and instances (updates in the notebook)."),
        (widgets.composer, "Message composer for {queue} (write and send messages in the live notebook)."),
        (widgets.post_inspector, "POST inspector of {queue}: each POST exactly as it arrived (shown in the live notebook)."),
        (widgets.dlq_explorer, "Dead-letter queue explorer of {queue} (look, redrive and purge in the live notebook)."),
        (
            widgets.failure_injector,
            "Failure injector of {queue} (change it in the live notebook). Worker healthy: every request is handled.",
        ),
    ],
)  # fmt: skip
def test_a_widget_on_a_lab_names_its_lab(lab: Lab, make: Callable[[Lab], Any], words: str) -> None:
    widget = make(lab)
    try:
        assert _plain(widget) == words.format(queue=lab.queues.name)
    finally:
        widget.close()


def test_the_injector_text_says_what_is_injected_now(lab: Lab) -> None:
    injector = widgets.failure_injector(lab)
    try:
        lab.inject(error_rate=1.0, status=503)
        assert _plain(injector).endswith("Worker now: 100% of requests answered 503.")
    finally:
        lab.heal()
        injector.close()


def test_the_tuner_and_the_no_lab_sentence_read_as_text() -> None:
    tuner = widgets.scaling_tuner()
    try:
        assert _plain(tuner) == "Scaling tuner on the simulator (move the sliders in the live notebook)."
    finally:
        tuner.close()
    assert _plain(widgets.composer(None)) == (
        'The composer needs a running lab: run lab = course.start("name") first, then pass lab to it.'
    )
