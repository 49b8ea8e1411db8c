"""Notebook 10's capstone: the kit keeps a learner's solved handler, builds a bundle of it, reads it back
as EB would, and the 10.1 check says 'not yet' for each production number that would fail on AWS.

The check serves the bundle's own application.py on loopback and runs a daemon against it, on the
session's SQS endpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import request

from labapp.cli import bundle as cli_bundle
from labapp.course import nb10, portfolio
from labapp.course.checks import core as checks
from labapp.course.checks import nb10 as _checks10  # noqa: F401 - importing registers the checks
from labapp.course.handlers import process
from labapp.sqsd.options import AWS_DEFAULTS, SqsdOptions

#: The solution notebook's answer: every production number met.
GOOD = AWS_DEFAULTS.replace(
    InactivityTimeout=120, VisibilityTimeout=180, ErrorVisibilityTimeout=60, MaxRetries=6
)
REASON = "bad message"


def handle_order() -> Any:
    """03.1's answer, as a learner writes it."""
    try:
        process(json.loads(request.get_data()))
    except ValueError as exc:
        return f"{REASON}: {exc}", 400
    return "done", 200


def handle_everything_500() -> Any:
    return "broken", 500


made_in_the_notebook = object()


def uses_a_notebook_object() -> Any:
    return str(made_in_the_notebook), 200


@pytest.fixture(autouse=True)
def _lab(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lab home of its own (the portfolio lives there), recording on, off the repository's solutions/."""
    monkeypatch.setenv("LAB_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_PROGRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def run(**namespace: Any) -> checks.Outcome:
    return checks.run_check(checks.REGISTRY["10.1"], namespace)


def build(options: SqsdOptions, folder: Path) -> Path:
    built = nb10.build_bundle(options, folder)
    assert built is not None
    return built


# -- the portfolio ---------------------------------------------------------------------------------------
def test_a_handler_is_kept_with_the_imports_it_needs() -> None:
    said = portfolio.keep("03.1", {"handle_order": handle_order})
    assert said is not None and "Kept your handle_order" in said
    kept = portfolio.kept_handler()
    assert kept is not None and kept.source.startswith("def handle_order() -> Any:")
    assert set(kept.imports) == {
        "import json",
        "from flask import request",
        "from labapp.worker.views import process",
        f"REASON = {REASON!r}",
    }


def test_a_handler_using_an_object_made_in_the_notebook_is_refused_in_one_sentence() -> None:
    said = portfolio.keep("03.1", {"handle_order": uses_a_notebook_object})
    assert said is not None and "`made_in_the_notebook`, which was made in the notebook" in said
    assert portfolio.kept_handler() is None


def test_options_are_kept_and_nothing_is_kept_while_progress_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    portfolio.keep("04.1", {"outage_options": GOOD})
    assert portfolio.load("04.1") == {
        "exercise": "04.1",
        "name": "outage_options",
        "options": dataclasses.asdict(GOOD),
    }
    monkeypatch.setenv("LAB_PROGRESS", "off")
    assert portfolio.keep("03.1", {"handle_order": handle_order}) is None
    assert portfolio.kept_handler() is None


# -- the bundle, as EB reads it -----------------------------------------------------------------------------
def test_the_bundle_holds_the_kept_handler_and_reads_back_as_built(tmp_path: Path) -> None:
    portfolio.keep("03.1", {"handle_order": handle_order})
    folder = build(GOOD, tmp_path / "bundle")
    application = (folder / "application.py").read_text()
    assert (
        "def handle_order() -> Any:" in application
        and "from labapp.worker.views import process" in application
    )
    compile(application, "application.py", "exec")
    reading = cli_bundle.read_bundle(folder)
    assert reading.options == GOOD
    assert reading.proxy_read_timeout > GOOD.InactivityTimeout
    assert reading.threads == GOOD.HttpConnections
    assert [task.name for task in reading.tasks] == ["nightly-report", "ledger-heartbeat"]
    assert cli_bundle.bundle_problems(reading) == []


def test_the_check_serves_the_bundles_own_application_with_the_kept_handler(tmp_path: Path) -> None:
    portfolio.keep("03.1", {"handle_order": handle_order})
    folder = build(GOOD, tmp_path / "bundle")
    outcome = run(bundle_options=GOOD, my_bundle=folder)
    assert outcome.status == checks.CORRECT, outcome
    assert "your handle_order from 03.1" in outcome.reason


def test_a_kept_handler_that_fails_everything_fails_the_run(tmp_path: Path) -> None:
    portfolio.keep("03.1", {"handle_order": handle_everything_500})
    folder = build(GOOD, tmp_path / "bundle")
    outcome = run(bundle_options=GOOD, my_bundle=folder)
    assert outcome.status == checks.NOT_YET and "did not do the order" in outcome.reason, outcome


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (
            GOOD.replace(InactivityTimeout=60),
            "InactivityTimeout is 60 s and the nightly report runs up to 95 s",
        ),
        (
            GOOD.replace(VisibilityTimeout=120),
            "VisibilityTimeout (120 s) is not longer than InactivityTimeout",
        ),
        (GOOD.replace(ErrorVisibilityTimeout=10, MaxRetries=30), "the provider asks for at least 30 s"),
        (GOOD.replace(MaxRetries=5), "the last comes about 240 s after the first, within a 240 s outage"),
        (AWS_DEFAULTS, "tries again 2 s later"),
    ],
    ids=["report-cut-off", "visible-while-running", "retries-too-soon", "dlq-during-outage", "eb-defaults"],
)
def test_each_production_number_that_would_fail_is_not_yet(
    tmp_path: Path, options: SqsdOptions, says: str
) -> None:
    outcome = run(bundle_options=options, my_bundle=build(options, tmp_path / "bundle"))
    assert outcome.status == checks.NOT_YET and says in outcome.reason, outcome


def test_the_check_reads_the_files_so_a_hand_edit_counts(tmp_path: Path) -> None:
    folder = build(GOOD, tmp_path / "bundle")
    (folder / cli_bundle.NGINX_CONF_D / "sqsd-timeouts.conf").write_text("proxy_read_timeout 60s;\n")
    outcome = run(bundle_options=GOOD, my_bundle=folder)
    assert outcome.status == checks.NOT_YET and "nginx gives up after 60 s" in outcome.reason, outcome
    (folder / ".ebextensions" / "sqsd.config").write_text(
        "option_settings:\n  aws:elasticbeanstalk:sqsd:sqsd: {}\n"
    )
    outcome = run(bundle_options=GOOD, my_bundle=folder)
    assert outcome.status == checks.NOT_YET and outcome.reason.startswith("EB would not accept the bundle"), (
        outcome
    )


def test_options_changed_after_the_build_are_named(tmp_path: Path) -> None:
    folder = build(GOOD, tmp_path / "bundle")
    outcome = run(bundle_options=GOOD.replace(MaxRetries=7), my_bundle=folder)
    assert outcome.status == checks.NOT_YET and "run the cell with build_bundle again" in outcome.reason, (
        outcome
    )


def test_stubs_are_not_attempted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(bundle_options=..., my_bundle=None).status == checks.NOT_ATTEMPTED
    assert nb10.build_bundle(..., tmp_path / "b") is None  # type: ignore[arg-type]
    assert "The bundle needs sqsd options" in capsys.readouterr().out
    assert run(bundle_options=GOOD).status == checks.NOT_ATTEMPTED


# -- the reader on the command line -------------------------------------------------------------------------
def test_read_names_what_would_go_wrong_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = build(GOOD, tmp_path / "bundle")
    (folder / "Procfile").write_text("web: waitress-serve --listen=127.0.0.1:8000 application:application\n")
    assert cli_bundle.main(["--read", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "Procfile: waitress, 4 threads" in out and "problem: the Procfile gives waitress 4 threads" in out


def test_read_accepts_the_kits_deploy_folder_and_refuses_a_missing_one_in_one_sentence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_bundle.main(["--read", str(cli_bundle.DEPLOY_DIR)]) == 0
    assert cli_bundle.main(["--read", "/no/such/bundle"]) == 2
    assert (
        capsys.readouterr().err
        == "error: /no/such/bundle is not a folder; point at the unzipped source bundle.\n"
    )


def test_the_zip_deploys_with_the_worker_alone(tmp_path: Path) -> None:
    """Unzipped, application.py with the kept handler imports no course, runtime or boto3: on EB the
    bundle's requirements.txt (flask, waitress, pyyaml) is all there is."""
    portfolio.keep("03.1", {"handle_order": handle_order})
    build(GOOD, tmp_path / "bundle")
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(tmp_path / "bundle.zip") as upload:
        upload.extractall(unzipped)
    probe = (
        "import sys, application; "
        "extra = sorted(m for m in sys.modules if m.startswith(('labapp.course', 'labapp.runtime', 'boto'))); "
        "print(application.__file__, extra); sys.exit(1 if extra else 0)"
    )
    env = {**os.environ, "LAB_LEDGER_PATH": str(tmp_path / "ledger.sqlite")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=unzipped, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(str(unzipped / "application.py"))
