"""The served path: versions are published, runs are decided with them, thresholds move by policy."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from flywheel.eval.bench_sim import run_sim
from flywheel.ledger import Ledger
from flywheel.ledger.tables import decisions
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.registry.policy import load_policies

ROOT = Path(__file__).resolve().parents[2]
LABEL = re.compile(r"^(?P<wf>\w+)@v(?P<n>\d+)$")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("served")
    # A short cadence, so that a short run publishes many versions.
    result = run_sim("stationary", 1200, seed=0, folder=folder, publish_every_outcomes=60, publish_every_s=1e9)
    return result, folder


def _decided(folder: Path) -> list[tuple[str, str]]:
    ledger = Ledger(f"sqlite:///{folder}/ledger.db")
    try:
        with ledger.engine.connect() as c:
            return [(r.workflow, r.config_version) for r in
                    c.execute(select(decisions.c.workflow, decisions.c.config_version).order_by(decisions.c.id))]
    finally:
        ledger.dispose()


def test_versions_are_published_and_runs_are_decided_with_them(served: tuple[dict, Path]) -> None:
    result, folder = served
    registry = MlflowRegistry(f"sqlite:///{folder}/mlflow.db", str(folder / "artifacts"))
    rows = _decided(folder)
    assert len(rows) == 1200
    for wf in ("ticket_triage", "report_generation"):
        versions = registry.versions(wf)
        live = [v.number for v in versions if v.tags.get("status") == "auto"]
        assert len(live) >= 3, wf  # published and made champion by policy
        labels = [label for w, label in rows if w == wf]
        numbers = [int(m["n"]) for m in map(LABEL.match, labels) if m]
        assert numbers, wf
        first = labels.index(f"{wf}@v{numbers[0]}")
        # Before the first version the initial config decides; after it, only published versions,
        # each a champion, in order.
        assert all(label.startswith(f"{wf}@static-") for label in labels[:first])
        assert len(numbers) == len(labels) - first
        assert numbers == sorted(numbers) and set(numbers) <= set(live)
        assert len(set(numbers)) >= 3
    assert result["served"]["runs_decided_by_published_versions"] == sum("@v" in label for _, label in rows)


def test_thresholds_move_at_most_the_policys_step_a_version(served: tuple[dict, Path]) -> None:
    _, folder = served
    registry = MlflowRegistry(f"sqlite:///{folder}/mlflow.db", str(folder / "artifacts"))
    policies = load_policies(ROOT / "configs" / "policies.yaml")
    moved = 0
    for wf in ("ticket_triage", "report_generation"):
        champions = [registry.config(wf, v.number) for v in registry.versions(wf) if v.tags.get("status") == "auto"]
        for before, after in zip(champions, champions[1:]):
            for gate, value in after.thresholds.items():
                _, rule = policies.for_workflow(wf).rule_for(f"thresholds.{gate}")
                step = abs(value - before.thresholds[gate])
                assert step <= rule.max_step + 1e-9, (wf, gate, before.version, after.version)
                moved += step > 0
    assert moved > 0  # the thresholds did move


def test_the_learners_own_thresholds_are_reported_beside_the_served_ones(served: tuple[dict, Path]) -> None:
    result, _ = served
    for wf, fig in result["workflows"].items():
        assert set(fig["learner_thresholds"]) == set(fig["thresholds"])
    by_status = defaultdict(int, result["served"]["versions_judged"])
    assert by_status["auto"] == result["served"]["champions_applied"]
