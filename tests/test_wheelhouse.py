"""The offline classroom path: `make wheelhouse` builds a folder of wheels, and a fresh venv installs
the lab from it with no package index at all, as a laptop on poor Wi-Fi would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def test_a_fresh_venv_installs_the_lab_from_the_wheelhouse_alone(tmp_path: Path) -> None:
    wheels = tmp_path / "wheelhouse"
    run(["make", "--no-print-directory", "wheelhouse", f"WHEELHOUSE={wheels}"], cwd=ROOT)
    assert any(wheels.glob("jupyterlab-*.whl")) and any(wheels.glob("boto3-*.whl"))
    venv = tmp_path / "laptop"
    run([sys.executable, "-m", "venv", str(venv)])
    # A laptop's own pip knows no index and no local wheel folders: only the wheelhouse.
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheels)]
    run([*pip, "-r", str(ROOT / "requirements.txt")], env=offline)
    run([*pip, "--no-deps", str(ROOT)], env=offline)
    probe = "import labapp.cli, labapp.course, jupyterlab, boto3, flask, ipywidgets, localstack_client"
    run([str(venv / "bin" / "python"), "-c", probe], env=offline, cwd=tmp_path)
    assert "doctor" in run([str(venv / "bin" / "labapp"), "--help"], env=offline).stdout
