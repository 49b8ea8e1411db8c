"""Open the widgets demo in real JupyterLab and Debian's Chromium, run it, and move the tuner.

Everything runs on 127.0.0.1 with a private token, private Jupyter folders and the classroom
settings overrides. Playwright drives the system Chromium; it never downloads a browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from labapp.runtime.ports import free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = Path(__file__).resolve().parent / "browser"
OVERRIDES = ROOT / "jupyter" / "overrides.json"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SKIP_ENV = "LAB_SKIP_BROWSER"
TUNER_REDRAWN = """before => {
    const tuner = document.querySelector('.lab-tuner');
    return tuner.textContent.includes('(4 s ÷') && !tuner.classList.contains('lab-busy')
        && document.querySelector('img.lab-tuner-plot').src !== before;
}"""
IMAGE_SRC = re.compile(r"^(blob|data):.+")  # an ipywidgets Image shows its bytes as a blob URL


class JupyterServer:
    """A JupyterLab server process on loopback, with its URL, token and log."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, token: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.token = token
        self.log = log

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"JupyterLab exited while starting:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.api("/api/status")
                return
            time.sleep(0.2)
        pytest.fail(f"JupyterLab did not answer in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def wait_for_kernel(self, timeout: float = 60) -> None:
        """Wait until the notebook's kernel is idle and the browser is connected to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kernels: list[dict[str, Any]] = []
            # Listing kernels while one is starting can answer 500 for a moment; ask again.
            with contextlib.suppress(OSError, urllib.error.URLError):
                kernels = self.api("/api/kernels")
            if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
                return
            time.sleep(0.2)
        pytest.fail(f"No kernel became ready in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def shutdown(self) -> None:
        """Shut the kernels down through the API, then stop the server and anything it left."""
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.process.pid).children(recursive=True)
        if self.process.poll() is None:
            with contextlib.suppress(OSError, urllib.error.URLError):
                for kernel in self.api("/api/kernels"):
                    self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            child.kill()


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium; a missing browser fails the run unless LAB_SKIP_BROWSER=1 says skip."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: browser test skipped on request")
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (`apt-get install -y chromium`, which "
            f".ci/run does), or set {SKIP_ENV}=1 to skip this test on purpose."
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab serving a copy of tests/browser with the classroom overrides and private folders."""
    tmp_path = tmp_path_factory.mktemp("jupyter")
    root = tmp_path / "notebooks"
    shutil.copytree(DEMO_DIR, root)
    settings = tmp_path / "app-settings"
    settings.mkdir()
    shutil.copy(OVERRIDES, settings / "overrides.json")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "LAB_HOME": str(tmp_path / "lab-home"),
        # The notebook's lab gets its own emulator port, never a learner's 4566.
        "LAB_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                f"--LabApp.app_settings_dir={settings}",
                f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}",
                f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
                # CI containers run as root; Jupyter refuses that unless told.
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(process, f"http://127.0.0.1:{port}", token, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.shutdown()


def test_overrides_turn_news_off_and_keep_every_cell_attached(jupyter: JupyterServer) -> None:
    # Overrides replace the schema defaults the server hands to the page.
    notification = jupyter.api("/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert notification["schema"]["properties"]["fetchNews"]["default"] == "false"
    assert notification["schema"]["properties"]["checkForUpdates"]["default"] is False
    tracker = jupyter.api("/lab/api/settings/@jupyterlab/notebook-extension:tracker")
    assert tracker["schema"]["properties"]["windowingMode"]["default"] == "none"


def _open_and_run_all(page: Any, jupyter: JupyterServer) -> None:
    """Open the demo notebook, wait for its kernel, run every cell and wait for the last one."""
    from playwright.sync_api import expect

    page.set_default_timeout(60_000)
    page.goto(f"{jupyter.url}/lab/tree/widgets_demo.ipynb?token={jupyter.token}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    jupyter.wait_for_kernel()
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    expect(page.locator(".jp-OutputArea-output", has_text="All cells ran.")).to_be_visible(timeout=90_000)


def test_widgets_demo_runs_in_chromium_and_the_tuner_redraws(chromium: Path, jupyter: JupyterServer) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            _open_and_run_all(page, jupyter)

            for name in ("lab-dashboard", "lab-composer", "lab-injector", "lab-tuner"):
                expect(page.locator(f".{name}")).to_be_visible()
            expect(page.get_by_text("Error displaying widget")).to_have_count(0)
            expect(page.locator("img.lab-dashboard-plot")).to_have_attribute("src", IMAGE_SRC)

            plot = page.locator("img.lab-tuner-plot")
            expect(plot).to_have_attribute("src", IMAGE_SRC)
            before = plot.get_attribute("src")
            # The first slider is "Seconds per message" (2.0, step 0.5): four steps right make 4.
            handle = page.locator(".lab-tuner .noUi-handle").first
            handle.focus()
            for _ in range(4):
                page.keyboard.press("ArrowRight")
            # Done when the kernel has seen 4 s (its hint line says so), has drawn that
            # (no lab-busy class left) and the browser shows a new image.
            page.wait_for_function(TUNER_REDRAWN, arg=before)
            expect(page.get_by_text("Error displaying widget")).to_have_count(0)
            page.wait_for_timeout(300)  # let the new image paint before the screenshot
            page.screenshot(path=str(ARTIFACTS / "widgets_demo.png"))
        finally:
            browser.close()


def test_feedback_predictions_and_pictures_read_in_light_and_dark_themes(
    chromium: Path, jupyter: JupyterServer
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 4000})
            _open_and_run_all(page, jupyter)
            boxes = page.locator(".jp-OutputArea-output .lab-feedback")
            expect(boxes.filter(has_text="✔ Correct")).to_be_visible()
            expect(boxes.filter(has_text="Hint 1 of 2")).to_be_visible()
            solution = boxes.filter(has_text="Show the solution for 99.1")
            expect(solution.locator("pre")).to_be_hidden()
            solution.locator("summary").click()
            expect(solution.locator("pre")).to_be_visible()

            predict = page.locator(".lab-predict")
            predict.get_by_text("Tries again later").click()
            predict.get_by_role("button", name="Commit my prediction").click()
            expect(predict.locator(".lab-feedback", has_text="✔ Right")).to_be_visible()
            expect(predict.get_by_text("Now run the next cell")).to_be_visible()
            expect(predict.locator("input[type=radio]:not([disabled])")).to_have_count(0)

            lanes = page.locator(".jp-Cell", has_text="course.swimlane(lab").locator(
                ".jp-OutputArea-output img"
            )
            natural, shown = lanes.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
            assert 800 <= natural <= 848 and shown == natural, (natural, shown)
            picture = page.locator("img.lab-diagram[alt^='Retries and the dead-letter queue. SQS counts']")
            expect(picture).to_be_visible()
            assert picture.evaluate("img => img.naturalWidth") == 860
            expect(page.get_by_text("Error displaying widget")).to_have_count(0)

            for theme in ("light", "dark"):
                if theme == "dark":
                    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
                    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
                    page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
                    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
                    page.wait_for_timeout(500)  # let the new colours paint
                page.locator(".jp-Cell", has_text="ex.solution()").screenshot(
                    path=str(ARTIFACTS / f"feedback_{theme}.png")
                )
                predict.screenshot(path=str(ARTIFACTS / f"predict_{theme}.png"))
        finally:
            browser.close()


# -- every notebook, as a learner runs it ----------------------------------------------------------------
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
# JupyterLab renders a cell's error as stderr (there is no error mime type in the page); IPython's
# traceback is what tells it from a warning.
ERRORS = """() => [...document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(o => o.textContent).filter(t => t.includes('Traceback (most recent call last)'))"""
#: Run All is over when no cell waits ([*]) and one has run: cells after an error are aborted to [ ].
ALL_RAN = f"""() => {{
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
    const waiting = prompts.some(t => t.includes('*')), ran = prompts.some(t => /\\[\\d+\\]/.test(t));
    return ({ERRORS})().length > 0 || (!waiting && ran);
}}"""
NOT_RUN = """() => [...document.querySelectorAll('.jp-CodeCell')]
    .filter(c => !/\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent))
    .map(c => c.querySelector('.jp-InputPrompt').textContent + ' ' + c.querySelector('.cm-content').textContent.slice(0, 80))"""
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Model not found")


@pytest.fixture(scope="module")
def course_jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab serving a copy of the solution notebooks (with their images), as in a classroom."""
    tmp_path = tmp_path_factory.mktemp("course-jupyter")
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "solutions", root, ignore=shutil.ignore_patterns("*.cfg", ".ipynb_checkpoints"))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "LAB_HOME": str(tmp_path / "lab-home"),
        "LAB_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyter.log"
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    argv += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    argv += [f"--ServerApp.root_dir={root}", *(["--allow-root"] if os.geteuid() == 0 else [])]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(process, f"http://127.0.0.1:{port}", token, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.shutdown()


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=[p.stem[:2] for p in SOLUTIONS])
def test_every_notebook_runs_in_chromium_with_no_widget_error(
    chromium: Path, course_jupyter: JupyterServer, notebook: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = ARTIFACTS / "notebooks"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 3000})
            page.set_default_timeout(60_000)
            # A workspace of its own, reset: JupyterLab would otherwise reopen the notebooks before.
            workspace = f"/lab/workspaces/nb{notebook.stem[:2]}/tree/{notebook.name}"
            page.goto(f"{course_jupyter.url}{workspace}?reset&token={course_jupyter.token}")
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
            _wait_for_session(course_jupyter, notebook.name)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            try:
                page.wait_for_function(ALL_RAN, timeout=240_000, polling=500)
            except Exception:
                page.screenshot(path=str(shots / f"{notebook.stem}-unfinished.png"), full_page=True)
                pytest.fail(
                    f"{notebook.name} did not finish in 240 s; cells not run: {page.evaluate(NOT_RUN)}"
                )
            errors = page.evaluate(ERRORS)
            assert errors == [], f"{notebook.name} raised:\n" + "\n".join(e[-1500:] for e in errors)
            not_run = page.evaluate(NOT_RUN)
            assert not_run == [], f"{notebook.name}: Run All stopped; cells not run: {not_run}"
            for text in WIDGET_ERRORS:
                expect(page.get_by_text(text)).to_have_count(0)
            page.screenshot(path=str(shots / f"{notebook.stem}.png"), full_page=True)
        finally:
            browser.close()
            # End this notebook's session and kernel, so the next notebook starts on a quiet machine.
            for session in course_jupyter.api("/api/sessions"):
                course_jupyter.api(f"/api/sessions/{session['id']}", method="DELETE")


def _wait_for_session(server: JupyterServer, name: str, timeout: float = 90) -> None:
    """Wait until this notebook's own kernel is idle and the page is connected to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions: list[dict[str, Any]] = []
        with contextlib.suppress(OSError, urllib.error.URLError):
            sessions = server.api("/api/sessions")
        for session in sessions:
            kernel = session.get("kernel") or {}
            mine = session.get("path", "").endswith(name)
            if mine and kernel.get("execution_state") == "idle" and kernel.get("connections", 0) > 0:
                return
        time.sleep(0.2)
    pytest.fail(f"{name}'s kernel did not become ready in {timeout:.0f}s:\n{server.log.read_text()[-3000:]}")
