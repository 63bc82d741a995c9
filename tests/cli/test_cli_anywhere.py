"""The `flywheel` command works from any folder: the default configs ship inside the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flywheel

SOURCE_ROOT = Path(flywheel.__file__).resolve().parents[1]  # the flywheel these tests import


def _flywheel(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env["PYTHONPATH"] = str(SOURCE_ROOT)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_workflows_list_from_an_empty_folder(empty):
    done = _flywheel(empty, "workflows", "list")
    assert done.returncode == 0, done.stderr
    assert "ticket_triage" in done.stdout and "confidence>=0.7" in done.stdout
    assert "report_generation" in done.stdout
    assert list(empty.iterdir()) == []  # reading the defaults writes nothing here


def test_bench_sim_from_an_empty_folder(empty):
    done = _flywheel(empty, "bench", "sim", "--scenario", "stationary", "--runs", "200", "--json", "out.json")
    assert done.returncode == 0, done.stderr
    result = json.loads((empty / "out.json").read_text())
    assert (result["scenario"], result["runs"]) == ("stationary", 200)
    assert set(result["workflows"]) == {"ticket_triage", "report_generation"}


def test_init_writes_editable_copies_that_are_then_used(empty):
    done = _flywheel(empty, "init", "site")
    assert done.returncode == 0, done.stderr
    site = empty / "site"
    for name in ("app.yaml", "policies.yaml", "serve.yaml", "workflows/ticket_triage.yaml",
                 "scenarios/stationary.yaml"):
        assert (site / name).is_file(), name
    triage = site / "workflows" / "ticket_triage.yaml"
    edited = triage.read_text().replace("threshold: 0.7", "threshold: 0.85")
    assert edited != triage.read_text()
    triage.write_text(edited)

    listed = _flywheel(empty, "workflows", "list", "--config", "site/app.yaml")
    assert listed.returncode == 0, listed.stderr
    assert "confidence>=0.85" in listed.stdout  # the copy, not the packaged file

    again = _flywheel(empty, "init", "site")
    assert again.returncode == 1 and "--force" in again.stderr
    assert "threshold: 0.85" in triage.read_text()  # refused: the edit is kept
    forced = _flywheel(empty, "init", "site", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "threshold: 0.85" not in triage.read_text()
