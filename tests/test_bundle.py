"""The committed deploy/ bundle matches what labapp.cli.bundle generates, and it is a valid EB bundle."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from labapp.cli import bundle
from labapp.errors import ConfigError
from labapp.sqsd.cron import load_cron
from labapp.sqsd.ebextensions import load_ebextensions
from labapp.sqsd.options import AWS_DEFAULTS, NAMESPACE, OPTION_NAMES, WRONG_NAMES
from labapp.worker import state as worker_state

DEPLOY = bundle.DEPLOY_DIR
FIX = "run `python -m labapp.cli.bundle` to regenerate deploy/"


def test_committed_deploy_files_match_the_generator() -> None:
    assert bundle.drift(DEPLOY) == [], FIX


def test_deploy_holds_only_generated_files() -> None:
    expected = set(bundle.render_bundle(bundle.PRODUCTION_OPTIONS, (DEPLOY / "cron.yaml").read_text()))
    present = {
        str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert present == expected, FIX


def test_ebextensions_round_trip_to_the_production_options() -> None:
    assert load_ebextensions(DEPLOY / ".ebextensions") == bundle.PRODUCTION_OPTIONS
    assert load_ebextensions(DEPLOY) == bundle.PRODUCTION_OPTIONS
    assert bundle.PRODUCTION_OPTIONS != AWS_DEFAULTS


def test_ebextensions_name_only_real_sqsd_options() -> None:
    document = yaml.safe_load((DEPLOY / ".ebextensions" / "sqsd.config").read_text())
    assert list(document) == ["option_settings"]
    assert list(document["option_settings"]) == [NAMESPACE]
    names = set(document["option_settings"][NAMESPACE])
    assert names <= set(OPTION_NAMES)
    assert not names & set(WRONG_NAMES)
    assert "WorkerQueueURL" not in names  # EB creates the queue and its DLQ


def test_deploy_cron_yaml_parses() -> None:
    tasks = load_cron(DEPLOY / "cron.yaml")
    assert tasks and all(task.url.startswith("/tasks/") for task in tasks)


def test_server_and_proxy_follow_the_options() -> None:
    options = bundle.PRODUCTION_OPTIONS.replace(HttpConnections=3, InactivityTimeout=900)
    files = bundle.render_bundle(options, (DEPLOY / "cron.yaml").read_text())
    assert files["Procfile"].startswith("web: waitress-serve --listen=127.0.0.1:8000 --threads=3 ")
    assert "proxy_read_timeout 905s;" in files[".platform/nginx/conf.d/sqsd-timeouts.conf"]
    # A slow job must not reappear on the queue while it still runs.
    assert bundle.PRODUCTION_OPTIONS.VisibilityTimeout > bundle.PRODUCTION_OPTIONS.InactivityTimeout


def test_requirements_reuse_the_lab_pins() -> None:
    root_pins = set((bundle.ROOT / "requirements.txt").read_text().splitlines())
    deployed = [
        line for line in (DEPLOY / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert deployed and set(deployed) <= root_pins
    assert any(line.startswith("waitress==") for line in deployed)  # the Procfile's server


def test_a_bad_cron_yaml_is_never_rendered() -> None:
    with pytest.raises(ConfigError, match=r"deploy/cron\.yaml"):
        bundle.render_bundle(bundle.PRODUCTION_OPTIONS, "version: 2\ncron: []\n")


def test_the_command_regenerates_a_drifted_copy(tmp_path: Path) -> None:
    (tmp_path / "cron.yaml").write_text((DEPLOY / "cron.yaml").read_text())
    assert bundle.main(["--dest", str(tmp_path), "--check"]) == 1
    command = [
        sys.executable,
        "-m",
        "labapp.cli.bundle",
        "--dest",
        str(tmp_path),
        "--zip",
        str(tmp_path / "b.zip"),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    assert bundle.drift(tmp_path) == []
    (tmp_path / "Procfile").write_text("web: python application.py\n")
    assert bundle.drift(tmp_path) == ["Procfile"]
    names = zipfile.ZipFile(tmp_path / "b.zip").namelist()
    assert {"Procfile", "application.py", "cron.yaml", ".ebextensions/sqsd.config"} <= set(names)
    assert "labapp/worker/app.py" in names and not any("__pycache__" in n for n in names)


def test_the_entry_point_serves_tasks_and_hides_lab_controls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_LEDGER_PATH", str(tmp_path / "ledger.sqlite"))
    namespace: dict[str, object] = {}
    exec(compile((DEPLOY / "application.py").read_text(), "application.py", "exec"), namespace)
    from werkzeug.test import Client

    client = Client(namespace["application"])  # type: ignore[arg-type]
    local = {"REMOTE_ADDR": "127.0.0.1"}  # what the app sees behind the platform's nginx
    headers = {"X-Aws-Sqsd-Taskname": "nightly-report", "X-Aws-Sqsd-Scheduled-At": "2024-05-01T03:00:00Z"}
    try:
        assert (
            client.post("/tasks/nightly-report", headers=headers, environ_overrides=local).status_code == 200
        )
        assert client.get("/_lab/health", environ_overrides=local).status_code == 200
        assert client.put("/_lab/failures", json={"crash": True}, environ_overrides=local).status_code == 404
    finally:
        worker_state.of(namespace["_app"]).ledger.close()  # type: ignore[attr-defined]
