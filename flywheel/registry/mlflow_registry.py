"""Learned-config versions in the MLflow Model Registry.

One registered model per workflow (`flywheel-<workflow>`). A version's run holds
the config as JSON, the learners' state and the routing policy's state as
artifacts, the evidence as metrics; the version's tags hold its lineage (parent
version, the ledger position it has learned up to, who proposed it). The alias
`champion` names the live version. Stages are deprecated and not used.

MLflow is imported lazily: it takes over a second to import and must stay off
the request path and out of module import time.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.registry.learned_config import LearnedConfig

CHAMPION = "champion"


@dataclass(slots=True)
class PublishedVersion:
    """A version as read back from the registry."""

    workflow: str
    number: int
    config: LearnedConfig
    learner_state: bytes | None
    policy_state: bytes | None
    position: int  # ledger position the learners have learned up to
    parent: int | None
    tags: dict[str, str]


def model_name(workflow: str) -> str:
    return f"flywheel-{workflow}"


def version_label(workflow: str, number: int) -> str:
    """The config version routers log with each decision."""
    return f"{workflow}@v{number}"


class MlflowRegistry:
    """Publishes and reads learned-config versions; works with a local SQLite store or a server."""

    def __init__(self, tracking_uri: str, artifact_root: str | None = None):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiments: dict[str, str] = {}

    def _experiment(self, workflow: str) -> str:
        if workflow not in self._experiments:
            name = f"flywheel/{workflow}"
            exp = self._client.get_experiment_by_name(name)
            if exp is None:
                location = None
                if self.artifact_root:
                    location = str(Path(self.artifact_root).resolve() / workflow)
                exp_id = self._client.create_experiment(name, artifact_location=location)
            else:
                exp_id = exp.experiment_id
            self._experiments[workflow] = exp_id
        return self._experiments[workflow]

    def _ensure_model(self, workflow: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(model_name(workflow))
        except MlflowException:
            self._client.create_registered_model(
                model_name(workflow), description=f"Learned configs of workflow {workflow}"
            )

    def publish(
        self,
        config: LearnedConfig,
        *,
        learner_state: bytes | None,
        policy_state: bytes | None,
        evidence: dict[str, float],
        position: int,
        proposed_by: str,
        make_champion: bool = True,
    ) -> LearnedConfig:
        """Register `config` as a new version; returns it with its version label set."""
        workflow = config.workflow
        self._ensure_model(workflow)
        parent = self.champion_number(workflow)
        run = self._client.create_run(self._experiment(workflow), run_name=f"{workflow}-{proposed_by}")
        run_id = run.info.run_id
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "config.json").write_text(config.model_dump_json(indent=2))
            if learner_state is not None:
                (Path(d) / "learner.pkl").write_bytes(learner_state)
            if policy_state is not None:
                (Path(d) / "policy.pkl").write_bytes(policy_state)
            self._client.log_artifacts(run_id, d, artifact_path="learned")
        for key, value in evidence.items():
            self._client.log_metric(run_id, _metric_key(key), float(value))
        self._client.set_terminated(run_id)
        tags = {
            "parent_version": "" if parent is None else str(parent),
            "ledger_position": str(position),
            "proposed_by": proposed_by,
            "config_hash": config.content_hash(),
        }
        mv = self._client.create_model_version(
            model_name(workflow), source=f"runs:/{run_id}/learned", run_id=run_id, tags=tags
        )
        if make_champion:
            self._client.set_registered_model_alias(model_name(workflow), CHAMPION, mv.version)
        return config.model_copy(update={"version": version_label(workflow, int(mv.version))})

    def champion_number(self, workflow: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self._client.get_model_version_by_alias(model_name(workflow), CHAMPION).version)
        except MlflowException:
            return None

    def champion(self, workflow: str) -> PublishedVersion | None:
        number = self.champion_number(workflow)
        return None if number is None else self.version(workflow, number)

    def version(self, workflow: str, number: int) -> PublishedVersion:
        mv = self._client.get_model_version(model_name(workflow), str(number))
        with tempfile.TemporaryDirectory() as d:
            path = Path(self._client.download_artifacts(mv.run_id, "learned", d))
            config = LearnedConfig.model_validate_json((path / "config.json").read_text())
            learner = (path / "learner.pkl").read_bytes() if (path / "learner.pkl").exists() else None
            policy = (path / "policy.pkl").read_bytes() if (path / "policy.pkl").exists() else None
        tags = dict(mv.tags or {})
        parent = tags.get("parent_version") or None
        return PublishedVersion(
            workflow=workflow,
            number=number,
            config=config.model_copy(update={"version": version_label(workflow, number)}),
            learner_state=learner,
            policy_state=policy,
            position=int(tags.get("ledger_position", "0")),
            parent=int(parent) if parent else None,
            tags=tags,
        )

    def metrics(self, workflow: str, number: int) -> dict[str, Any]:
        mv = self._client.get_model_version(model_name(workflow), str(number))
        return dict(self._client.get_run(mv.run_id).data.metrics)


def _metric_key(key: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and space."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)
