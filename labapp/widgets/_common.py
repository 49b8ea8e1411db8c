"""What every widget shares: the no-lab sentence, a text fallback, PNG rendering, threads that stop cleanly."""

from __future__ import annotations

import html
import io
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

log = logging.getLogger("labapp.widgets")

T = TypeVar("T")

MIN_PAUSE_S = 0.05
COLORS = {"ok": "#1a7f37", "bad": "#cf222e", "muted": "#57606a", "mark": "#fff3b0"}


def join_lab(lab: Any, widget: Any) -> None:
    """Hand widget to its lab, which closes it on `lab.stop()`, when the lab keeps such a list.

    Duck-typed (the lab's `own(widget)`), so widgets import nothing from the course.
    """
    own = getattr(lab, "own", None)
    if callable(own):
        own(widget)


class TextFallback(w.DOMWidget):
    """A widget whose text/plain is one sentence: what saved notebooks, terminals and nbval show.

    ipywidgets' own text/plain is the widget's repr cut at 110 characters, e.g. "VBox(children=...".
    """

    def text(self) -> str:
        """Return the sentence that stands for the widget where it cannot be drawn."""
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data: dict[str, Any] | None = super()._repr_mimebundle_(**kwargs)
        if data is not None:
            data["text/plain"] = self.text()
        return data

    def __repr__(self) -> str:
        return self.text()


class Sentence(TextFallback, w.HTML):
    """One line of HTML whose text/plain is the same line without markup."""

    def __init__(self, html_text: str, plain: str) -> None:
        self.plain = plain
        super().__init__(html_text)

    def text(self) -> str:
        """Return the line as plain text."""
        return self.plain


def lab_name(lab: Any) -> str:
    """Return the name of a lab's worker queue, e.g. 'lab-04', for a widget's text fallback."""
    queues = getattr(lab, "queues", None)
    return str(getattr(queues, "name", "") or f"lab-{getattr(lab, 'name', '?')}")


def lab_running(lab: Any) -> bool:
    """Return True when lab is a started Lab whose worker still runs."""
    return lab is not None and getattr(lab, "worker", None) is not None


def no_lab(what: str) -> w.HTML:
    """Return the one sentence a widget shows instead of itself when it has no running lab."""
    return Sentence(
        f"<p>The {html.escape(what)} needs a running lab: run "
        '<code>lab = course.start("name")</code> first, then pass <code>lab</code> to it.</p>',
        f'The {what} needs a running lab: run lab = course.start("name") first, then pass lab to it.',
    )


def line(text: str, tone: str = "muted") -> str:
    """Return one line of HTML in the given tone (ok, bad or muted); text is escaped."""
    return f'<span style="color:{COLORS[tone]}">{html.escape(text, quote=False)}</span>'


def new_figure(width: float, height: float, dpi: int = 72) -> Figure:
    """Return a Figure on its own Agg canvas (no pyplot: nothing global, safe off the main thread)."""
    # A fixed layout: constrained layout would double the cost of every frame.
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def close_all(*widgets: Any) -> None:
    """Close widgets and their children (a Box does not close its children itself)."""
    for widget in widgets:
        close_all(*getattr(widget, "children", ()))
        widget.close()


class Ticker:
    """Call `tick` every `period` seconds on a daemon thread until stop(); tick returns False to end."""

    def __init__(self, tick: Callable[[], bool], period: float, name: str) -> None:
        self.tick = tick
        self.period = period
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread unless it already runs."""
        if self.running:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self.name, daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        # A fixed rate, not a fixed pause: the tick's own work must not slow the rate down.
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                if self.tick() is False:
                    return
            except Exception:  # a drawing bug must end the thread loudly, not spin
                log.exception("widgets: %s stopped after an error", self.name)
                return
            # Never less than MIN_PAUSE_S between ticks, so a slow frame cannot starve the kernel.
            next_at = max(next_at + self.period, time.monotonic() + MIN_PAUSE_S)
            stop.wait(next_at - time.monotonic())

    def stop(self) -> None:
        """Ask the thread to end and wait for it (not when called from the thread itself)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None


class LatestWins(Generic[T]):
    """Run `work` on a background thread for the newest submitted item, skipping ones it missed.

    Slider drags send many values; only the last one needs drawing, so a slow redraw never
    builds a queue behind it.
    """

    def __init__(
        self, work: Callable[[T], None], name: str, on_busy: Callable[[bool], None] | None = None
    ) -> None:
        self.work = work
        # Called with True when work starts after being idle and False when nothing is left;
        # always under the lock, so the two calls can never arrive out of order.
        self.on_busy = on_busy or (lambda busy: None)
        self._changed = threading.Condition()
        self._pending: T | None = None
        self._has_pending = False
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        """Replace whatever waits with item."""
        with self._changed:
            if not self._has_pending and not self._busy:
                self.on_busy(True)
            self._pending, self._has_pending = item, True
            self._changed.notify_all()

    def wait_idle(self, timeout: float = 10) -> bool:
        """Block until every submitted item is done; return False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._has_pending and not self._busy, timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._has_pending or self._closed)
                if self._closed:
                    return
                item = self._pending
                self._pending, self._has_pending, self._busy = None, False, True
            try:
                self.work(item)  # type: ignore[arg-type]
            except Exception:  # keep serving later items; the widget shows its own error line
                log.exception("widgets: background work failed")
            finally:
                with self._changed:
                    self._busy = False
                    if not self._has_pending:
                        self.on_busy(False)
                    self._changed.notify_all()

    def close(self) -> None:
        """End the thread once the current item (if any) is done."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
