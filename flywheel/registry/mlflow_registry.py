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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.registry.learned_config import LearnedConfig

CHAMPION = "champion"
CANDIDATE = "candidate"
PAGE_SIZE = 1000
"""Versions fetched per `search_model_versions` call."""


class RegistryUnavailable(RuntimeError):
    """MLflow could not be reached or failed; nothing was decided from its silence."""


@dataclass(slots=True)
class VersionSummary:
    """A version's registry facts, without downloading its artifacts."""

    number: int
    created_at: float  # unix seconds
    tags: dict[str, str]
    run_id: str


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


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a local SQLite store (``sqlite:///path``); None for any other URI."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def ensure_store(tracking_uri: str) -> None:
    """Create (or migrate) a local SQLite MLflow store once, before several processes use it.

    MLflow creates a missing store on first use, and two processes doing that
    at the same moment break each other's migration. Here the first process
    creates the tracking and registry tables under an inter-process file lock
    (``<db>.lock``); the others wait, then find the store current. Other URIs
    (a server) are left alone.
    """
    path = sqlite_path(tracking_uri)
    if path is None:
        return
    from filelock import FileLock
    from mlflow import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)  # creates the tracking store's tables
        client.search_registered_models(max_results=1)  # and the registry's


class MlflowRegistry:
    """Publishes and reads learned-config versions; works with a local SQLite store or a server."""

    def __init__(self, tracking_uri: str, artifact_root: str | None = None):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # A server that is down should fail an operation in seconds, not minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        ensure_store(tracking_uri)
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiments: dict[str, str] = {}
        self._configs: dict[tuple[str, int], LearnedConfig] = {}  # versions are immutable

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

    def register(
        self,
        config: LearnedConfig,
        *,
        learner_state: bytes | None,
        policy_state: bytes | None,
        evidence: dict[str, float],
        position: int,
        proposed_by: str,
        tags: dict[str, str] | None = None,
    ) -> int:
        """Register `config` as a new version (no alias moves); returns its number."""
        workflow = config.workflow
        self._ensure_model(workflow)
        parent = self.champion_number(workflow)
        run = self._client.create_run(self._experiment(workflow), run_name=f"{workflow}-{proposed_by}")
        run_id = run.info.run_id
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "config.json").write_text(config.model_dump_json(indent=2))
            if learner_state is not None:
                (Path(d) / "learner.npz").write_bytes(learner_state)
            if policy_state is not None:
                (Path(d) / "policy.npz").write_bytes(policy_state)
            self._client.log_artifacts(run_id, d, artifact_path="learned")
        if evidence:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = {_metric_key(key): float(value) for key, value in evidence.items()}
            self._client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        self._client.set_terminated(run_id)
        all_tags = {
            "parent_version": "" if parent is None else str(parent),
            "ledger_position": str(position),
            "proposed_by": proposed_by,
            "config_hash": config.content_hash(),
            **(tags or {}),
        }
        mv = self._client.create_model_version(
            model_name(workflow), source=f"runs:/{run_id}/learned", run_id=run_id, tags=all_tags
        )
        return int(mv.version)

    # -- aliases and tags ---------------------------------------------------

    def alias(self, workflow: str, alias: str) -> int | None:
        """The version an alias names; None when unset (or the model does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            return int(self._client.get_model_version_by_alias(model_name(workflow), alias).version)
        except MlflowException as e:
            if _not_found(e):
                return None
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri}: {e}") from e

    def set_alias(self, workflow: str, alias: str, number: int) -> None:
        self._client.set_registered_model_alias(model_name(workflow), alias, str(number))

    def delete_alias(self, workflow: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.delete_registered_model_alias(model_name(workflow), alias)
        except MlflowException as e:
            if not _not_found(e):
                raise

    def set_version_tags(self, workflow: str, number: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_model_version_tag(model_name(workflow), str(number), key, value)

    def model_tags(self, workflow: str) -> dict[str, str]:
        """The registered model's tags ({} when it does not exist yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self._client.get_registered_model(model_name(workflow)).tags or {})
        except MlflowException as e:
            if _not_found(e):
                return {}
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri}: {e}") from e

    def set_model_tags(self, workflow: str, tags: dict[str, str]) -> None:
        self._ensure_model(workflow)
        for key, value in tags.items():
            self._client.set_registered_model_tag(model_name(workflow), key, value)

    def delete_model_tags(self, workflow: str, keys: list[str]) -> None:
        for key in keys:
            self._client.delete_registered_model_tag(model_name(workflow), key)

    def versions(self, workflow: str, *, tags: dict[str, str] | None = None) -> list[VersionSummary]:
        """The workflow's versions, oldest first (tags, no artifacts); with `tags`, only the
        versions whose tags have those values (filtered by MLflow, page by page)."""
        clauses = [f"name='{model_name(workflow)}'"] + [
            f"tags.`{key}`='{_quoted(value)}'" for key, value in (tags or {}).items()
        ]
        out: list[VersionSummary] = []
        token = None
        while True:
            page = self._client.search_model_versions(
                " AND ".join(clauses), max_results=PAGE_SIZE, order_by=["version_number ASC"], page_token=token
            )
            out.extend(
                VersionSummary(
                    number=int(mv.version),
                    created_at=(mv.creation_timestamp or 0) / 1000.0,
                    tags=dict(mv.tags or {}),
                    run_id=mv.run_id,
                )
                for mv in page
            )
            token = page.token
            if not token:
                return sorted(out, key=lambda v: v.number)

    def version_tags(self, workflow: str, number: int) -> dict[str, str] | None:
        """A version's tags; None when there is no such version."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self._client.get_model_version(model_name(workflow), str(number)).tags or {})
        except MlflowException as e:
            if _not_found(e):
                return None
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri}: {e}") from e

    def config(self, workflow: str, number: int) -> LearnedConfig:
        """A version's config alone (no states downloaded); cached, versions never change."""
        key = (workflow, number)
        if key not in self._configs:
            mv = self._client.get_model_version(model_name(workflow), str(number))
            with tempfile.TemporaryDirectory() as d:
                path = Path(self._client.download_artifacts(mv.run_id, "learned/config.json", d))
                cfg = LearnedConfig.model_validate_json(path.read_text())
            self._configs[key] = cfg.model_copy(update={"version": version_label(workflow, number)})
        return self._configs[key]

    def ping(self) -> None:
        """Raise RegistryUnavailable unless MLflow answers."""
        try:
            self._client.search_registered_models(max_results=1)
        except Exception as e:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {e}") from e

    def champion_number(self, workflow: str) -> int | None:
        return self.alias(workflow, CHAMPION)

    def champion(self, workflow: str) -> PublishedVersion | None:
        number = self.champion_number(workflow)
        return None if number is None else self.version(workflow, number)

    def version(self, workflow: str, number: int, *, learner: bool = True) -> PublishedVersion:
        """A version with its states (`learner=False`: without the learner's, which only
        learners need; routers need the config and the policy state)."""
        mv = self._client.get_model_version(model_name(workflow), str(number))
        with tempfile.TemporaryDirectory() as d:
            # *.pkl: versions written before the safe format; read, then refused by the state's loader
            names = ["config.json", "policy.npz", "policy.pkl"] + (["learner.npz", "learner.pkl"] if learner else [])
            present = {Path(f.path).name for f in self._client.list_artifacts(mv.run_id, "learned")}
            got = {
                name: Path(self._client.download_artifacts(mv.run_id, f"learned/{name}", d)).read_bytes()
                for name in names
                if name in present
            }
            config = LearnedConfig.model_validate_json(got["config.json"])
            learner_state = got.get("learner.npz", got.get("learner.pkl"))
            policy = got.get("policy.npz", got.get("policy.pkl"))
        tags = dict(mv.tags or {})
        parent = tags.get("parent_version") or None
        return PublishedVersion(
            workflow=workflow,
            number=number,
            config=config.model_copy(update={"version": version_label(workflow, number)}),
            learner_state=learner_state,
            policy_state=policy,
            position=int(tags.get("ledger_position", "0")),
            parent=int(parent) if parent else None,
            tags=tags,
        )

    def metrics(self, workflow: str, number: int) -> dict[str, Any]:
        mv = self._client.get_model_version(model_name(workflow), str(number))
        return dict(self._client.get_run(mv.run_id).data.metrics)


def _not_found(e: Exception) -> bool:
    code = getattr(e, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and "connect" not in str(e).lower()


def _metric_key(key: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and space."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


def _quoted(value: str) -> str:
    """A tag value for a filter string: only values without quotes or backslashes are searched."""
    if "'" in value or "\\" in value:
        raise ValueError(f"cannot search for a tag value with quotes or backslashes: {value!r}")
    return value
