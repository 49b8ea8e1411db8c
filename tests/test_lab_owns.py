"""`lab.stop()` closes every widget made for the lab, so a notebook never closes one earlier."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from labapp import widgets
from labapp.course.lab import Lab
from labapp.runtime.ports import free_port
from labapp.runtime.servers import HttpServer


def _widget_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lab-")]


def _closed(widget: Any) -> bool:
    """True when the widget and every widget inside it are closed (no comm left)."""
    return widget.comm is None and all(_closed(child) for child in getattr(widget, "children", ()))


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A real lab on its own emulator port; stopped again in teardown (stop is safe twice)."""
    monkeypatch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    started = Lab(f"own-{uuid.uuid4().hex[:8]}").start()
    try:
        yield started
    finally:
        started.stop()
        if started.endpoint is not None:
            started.endpoint.stop()


def test_stop_closes_every_widget_made_for_the_lab_and_ends_their_threads(lab: Lab) -> None:
    made = [
        widgets.dashboard(lab),
        widgets.composer(lab),
        widgets.post_inspector(lab),
        widgets.failure_injector(lab),
        widgets.dlq_explorer(lab),
    ]
    assert _widget_threads(), "the dashboard and the inspector refresh on threads of their own"
    assert not any(_closed(widget) for widget in made)

    lab.stop()

    assert [type(w).__name__ for w in made if not _closed(w)] == []
    assert _widget_threads() == []


def test_a_widget_closed_by_hand_and_one_that_fails_to_close_do_not_stop_the_lab_stopping(lab: Lab) -> None:
    class Broken:
        def close(self) -> None:
            raise RuntimeError("this widget cannot close")

    composer = widgets.composer(lab)
    composer.close()
    lab.own(Broken())
    inspector = widgets.post_inspector(lab)

    lab.stop()

    assert _closed(inspector) and _widget_threads() == []
    assert lab.worker is None and lab.daemon is None


def test_own_returns_what_it_was_given_keeps_it_once_and_stops_a_server(lab: Lab) -> None:
    app = Flask("owned")
    app.add_url_rule("/", "ok", lambda: "ok")
    server = HttpServer(app).start()
    assert lab.own(server) is server
    assert lab.own(server) is server
    assert requests.get(server.url, timeout=5).ok

    lab.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=5)


def test_a_widget_for_something_that_is_not_a_lab_still_works() -> None:
    # Widgets ask the lab to own them by duck typing: no `own` is no error.
    shown = widgets.composer(object())
    assert "needs a running lab" in shown.value
    shown.close()
