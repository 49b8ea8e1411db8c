"""A notebook whose SQS endpoint goes away, in IPython's own shell (no browser), and the DLQ
explorer's looks, which must not count as receives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from labapp import widgets
from labapp.course.lab import RUNNING, Lab
from labapp.runtime.emulator import Emulator
from labapp.widgets.dlq import DlqExplorer


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InteractiveShell, Emulator]]:
    """An IPython shell in this process, and an emulator of its own that the test may stop."""
    emulator = Emulator(port=0).start()
    monkeypatch.setenv("LAB_ENDPOINT_URL", emulator.url)
    shell = InteractiveShell.instance()
    try:
        yield shell, emulator
    finally:
        for name in [n for n in RUNNING if n.startswith("nb-err-")]:
            RUNNING.pop(name).stop()
        emulator.stop()
        InteractiveShell.clear_instance()


def test_a_dead_endpoint_is_two_lines_in_a_notebook(
    shell: tuple[InteractiveShell, Emulator], capsys: pytest.CaptureFixture[str]
) -> None:
    ipython, emulator = shell
    name = f"nb-err-{uuid.uuid4().hex[:6]}"
    ready = ipython.run_cell(f"from labapp import course\nlab = course.start({name!r}, daemon=False)")
    assert ready.success, ready.error_in_exec
    capsys.readouterr()
    emulator.stop()  # the emulator dies mid-notebook

    for cell in ("lab.depth()", "lab.send({'type': 'order'})"):
        result = ipython.run_cell(cell)
        out, err = capsys.readouterr()
        assert not result.success
        lines = out.strip().splitlines()
        assert lines == [
            f"The SQS endpoint at {emulator.url} does not answer: the emulator stopped, and its queues with it.",
            f'Fix: run the preflight cell again (`lab = course.start("{name}")`); it starts what is missing '
            "and makes fresh queues.",
        ], out + err
        assert "Traceback" not in out + err and "EndpointConnectionError" not in out + err


def test_a_restarted_endpoint_is_two_lines_and_other_errors_keep_their_traceback(
    shell: tuple[InteractiveShell, Emulator], capsys: pytest.CaptureFixture[str]
) -> None:
    ipython, _ = shell
    name = f"nb-err-{uuid.uuid4().hex[:6]}"
    assert ipython.run_cell(f"from labapp import course\nlab = course.start({name!r}, daemon=False)").success
    capsys.readouterr()
    # A queue the lab does not own is missing: that is the learner's to read, traceback and all.
    ipython.run_cell("lab.sqs.get_queue_url(QueueName='no-such-queue')")
    out, _ = capsys.readouterr()
    assert "Traceback" in out or "QueueDoesNotExist" in out or "NonExistentQueue" in out
    # The lab's own queues vanish, as when the endpoint restarts empty.
    ipython.run_cell("lab.sqs.delete_queue(QueueUrl=lab.queues.url)")
    capsys.readouterr()
    ipython.run_cell("lab.depth()")
    out, _ = capsys.readouterr()
    assert (
        out.strip()
        .splitlines()[0]
        .endswith("was restarted: this notebook's queues are gone with what they held.")
    )
    assert len(out.strip().splitlines()) == 2 and "Traceback" not in out


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    emulator = Emulator(port=0).start()
    monkeypatch.setenv("LAB_ENDPOINT_URL", emulator.url)
    lab = Lab(f"nb-dlq-{uuid.uuid4().hex[:6]}").start()
    try:
        yield lab
    finally:
        lab.stop()
        emulator.stop()


def test_the_dlq_explorer_looks_without_receiving(lab: Lab) -> None:
    lab.stop_daemon()
    lab.sqs.send_message(QueueUrl=lab.queues.dlq_url, MessageBody='{"type": "order", "n": 1}')
    explorer = widgets.dlq_explorer(lab)
    assert isinstance(explorer, DlqExplorer)
    for _ in range(4):  # each refresh used to be a receive, raising the count it shows
        explorer.refresh_button.click()
        [(text, _id)] = explorer.messages.options
        assert "received 0×" in text
    explorer.messages.value = (explorer.messages.options[0][1],)
    assert "looking leaves this count as it is" in explorer.detail.value
    explorer.close()
