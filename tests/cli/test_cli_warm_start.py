"""`flywheel export` and `flywheel learn --from`: a warm start end to end, on a real ledger and MLflow registry.

The source deployment is the simulator run through the served path (its own SQLite ledger);
the target is a fresh deployment in a temp folder (SQLite ledger, MLflow registry with a
SQLite store); the commands run as a user runs them, in a subprocess.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import flywheel
from flywheel.eval.bench_sim import run_sim
from flywheel.learners.logged import read_logged
from flywheel.registry.mlflow_registry import MlflowRegistry

SOURCE_ROOT = Path(flywheel.__file__).resolve().parents[1]
ARMS = ["fast", "balanced", "strong", "frontier"]  # ticket_triage's


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update(PYTHONPATH=str(SOURCE_ROOT), MLFLOW_DISABLE_TELEMETRY="true",
               FLYWHEEL_DATABASE_URL=f"sqlite:///{folder}/ledger.db",
               FLYWHEEL_MLFLOW_URI=f"sqlite:///{folder}/mlflow.db",
               FLYWHEEL_LEARNING__MLFLOW_ARTIFACTS=str(folder / "artifacts"))
    return env


def _flywheel(cwd: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flywheel.cli.main", *args], cwd=cwd, env=_env(folder),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment that ran 500 simulated runs: its ledger holds decisions, propensities and outcomes."""
    folder = tmp_path_factory.mktemp("source")
    run_sim("stationary", 500, seed=0, folder=folder)
    return folder


def test_export_then_learn_proposes_a_version_the_loop_continues_from(source: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    done = _flywheel(tmp_path, source, "export", "ticket_triage", "--out", "logs.jsonl")
    assert done.returncode == 0, done.stderr
    rows = read_logged(tmp_path / "logs.jsonl")
    assert len(rows) > 200 and f"wrote {len(rows)} outcomes" in done.stdout
    assert {r.workflow for r in rows} == {"ticket_triage"} and {r.arm for r in rows} <= set(ARMS)
    assert all(0 < r.propensity <= 1 and "prompt" in r.x for r in rows)
    assert min(r.propensity for r in rows) < 0.5  # exploration was logged with its probability

    target = tmp_path / "target"
    done = _flywheel(tmp_path, target, "learn", "ticket_triage", "--from", "logs.jsonl")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout[done.stdout.index("{"):])
    ev = out["evidence"]
    assert out["source"] == "logged" and ev["warm_start_rows"] == len(rows) == ev["outcomes"]
    assert ev["estimated_reward_low"] < ev["estimated_reward"] < ev["estimated_reward_high"]
    assert ev["holdout_rows"] == ev["estimated_gain_n"] > 0 and ev["importance_clip"] == 10.0
    assert out["judged"] == [{"version": 1, "action": "auto-promote", "status": "auto"}]

    registry = MlflowRegistry(f"sqlite:///{target}/mlflow.db", str(target / "artifacts"))
    v = registry.version("ticket_triage", 1)
    assert v.tags["proposed_by"] == "warm_start" and registry.champion_number("ticket_triage") == 1
    assert v.learner_state is not None and v.position == 0

    for k, val in _env(target).items():
        if k.startswith("FLYWHEEL_"):
            monkeypatch.setenv(k, val)
    from flywheel.services.settings import load_settings
    from flywheel.services.wiring import learning_loop

    loop = learning_loop(load_settings(None))  # restored: the warm start went live
    learner = loop.learners["ticket_triage"]
    assert learner.n_updates == len(rows)
    assert loop.positions["ticket_triage"] == 0  # this deployment's own ledger is replayed on top
    loop.ledger.dispose()


def _wide(path: Path, n: int = 300) -> Path:
    """ticket_triage's arms on `n` prompts: 'outage' prompts need strong or frontier, the rest fast or balanced."""
    rng = random.Random(4)
    rows = []
    for i in range(n):
        hard = rng.random() < 0.5
        row = {"prompt": f"{'outage in the cluster' if hard else 'password reset please'} {i}"}
        for arm, cost in zip(ARMS, (0.001, 0.002, 0.004, 0.008)):
            good = (arm in ("strong", "frontier")) == hard
            row[arm] = float(rng.random() < (0.9 if good else 0.2))
            row[f"{arm}|total_cost"] = cost
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_wide_table_is_learned_with_full_information(tmp_path: Path) -> None:
    table = _wide(tmp_path / "table.csv")
    target = tmp_path / "target"
    done = _flywheel(tmp_path, target, "learn", "ticket_triage", "--from", str(table))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout[done.stdout.index("{"):])
    ev = out["evidence"]
    assert out["source"] == "wide" and ev["warm_start_outcomes"] == 300 * 4 and ev["holdout_rows"] == 60
    # routing by the word beats the best single arm on the held-out rows
    assert ev["estimated_reward"] > ev["best_arm_reward"] and ev["estimated_gain"] > 0
    assert out["judged"][0]["version"] == 1


def test_bad_files_are_refused_naming_the_field(tmp_path: Path) -> None:
    target = tmp_path / "target"
    done = _flywheel(tmp_path, target, "learn", "ticket_triage", "--from", "missing.jsonl")
    assert done.returncode == 2 and "--from" in done.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"workflow": "ticket_triage", "run_id": "r", "position": 1, "x": {"prompt": "hi"},
                               "arm": "fast", "propensity": 0.0, "quality": 1.0, "cost": 0.0,
                               "latency_s": 0.0}) + "\n")
    done = _flywheel(tmp_path, target, "learn", "ticket_triage", "--from", str(bad))
    assert done.returncode == 2 and "row 1: propensity" in done.stderr
    done = _flywheel(tmp_path, target, "learn", "no_such_flow", "--from", str(bad))
    assert done.returncode == 2 and "no_such_flow" in done.stderr
    assert not (target / "mlflow.db").exists() or not MlflowRegistry(
        f"sqlite:///{target}/mlflow.db", str(target / "artifacts")).versions("ticket_triage")
