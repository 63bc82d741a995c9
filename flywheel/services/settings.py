"""The service's own config (configs/app.yaml): where state lives, which agents exist, how to serve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.workflows.loading import load_model, validate_data


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSettings(_Model):
    """One agent: a Serve deployment of its own, with the backend that answers for it."""

    backend: Literal["sim", "replay"] = Field(
        description=(
            "Agent backend. sim: a simulated model of the scenario; replay: the recorded outcomes "
            "of a real model in a RouterBench-format table (vllm and openai come later)."
        )
    )
    model: str = Field(description="Model behind the agent (sim: a model of the scenario; replay: a score column).")
    data: str | None = Field(
        default=None, description="replay: the RouterBench-format table (.csv, .csv.gz or .parquet)."
    )
    placement: Literal["deployment", "ingress"] = Field(
        default="deployment",
        description=(
            "deployment: a Serve deployment of its own (for backends that own models or GPUs); "
            "ingress: in-process in each ingress replica, saving a hop (for backends that own "
            "nothing: sim, replay, an HTTP client)."
        ),
    )
    replicas: int = Field(default=1, ge=1, description="Replicas of the agent's deployment.")
    max_ongoing_requests: int = Field(default=64, ge=1, description="Concurrent requests per replica.")
    num_cpus: float = Field(default=0.1, ge=0, description="CPUs reserved per replica.")


    @model_validator(mode="after")
    def _replay_needs_data(self) -> "AgentSettings":
        if self.backend == "replay" and not self.data:
            raise ValueError("data: a replay agent needs the path of its table")
        return self


class SimulatorSettings(_Model):
    """The simulated environment that sim agents answer from."""

    scenario: str = Field(default="stationary", description="Scenario name in scenarios_dir, or a path.")
    scenarios_dir: str = Field(default="configs/scenarios", description="Folder of scenario YAML files.")
    latency_scale: float = Field(
        default=0.0,
        ge=0,
        description="Fraction of the simulated latency a sim agent really sleeps (0: answer at once).",
    )


class ServeSettings(_Model):
    host: str = Field(default="127.0.0.1", description="Address the HTTP proxy binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the HTTP proxy.")
    ingress_replicas: int = Field(default=1, ge=1, description="Replicas of the ingress deployment.")
    router_replicas: int = Field(
        default=1, ge=1, description="Replicas of the router deployment (each follows the registry)."
    )
    ingress_max_ongoing_requests: int = Field(default=256, ge=1, description="Concurrent requests per ingress replica.")
    num_cpus: float = Field(default=0.1, ge=0, description="CPUs reserved per ingress/router replica.")
    throughput_optimized: bool = Field(
        default=False,
        description=(
            "Start Ray with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (user code on the replica's own loop, "
            "gRPC between deployments): faster requests (benchmarks/serve_overhead.py), but Serve's "
            "controller then took over 30 s to shut down here."
        ),
    )


class LearningSettings(_Model):
    """The fast loop: learners update with every outcome and publish versions."""

    enabled: bool = Field(default=True, description="Run the learner deployment.")
    publish_every_outcomes: int = Field(
        default=200, ge=1, description="Publish a new version after this many outcomes, when changed."
    )
    publish_every_s: float = Field(
        default=10.0, gt=0, description="Publish a new version at least this often (seconds), when changed."
    )
    poll_s: float = Field(default=0.5, gt=0, description="How often the learner looks for outcomes it was not told of.")
    n_bits: int = Field(default=14, ge=8, le=22, description="Hashed feature slots (2**n_bits) of the routing bandit.")
    mlflow_tracking_uri: str = Field(
        default="sqlite:///.flywheel/mlflow.db",
        description="MLflow tracking and registry store; FLYWHEEL_MLFLOW_URI overrides it.",
    )
    mlflow_artifacts: str = Field(default=".flywheel/mlartifacts", description="Where version artifacts are stored.")


class GovernanceSettings(_Model):
    """What may change by itself, and how fast routers follow the registry."""

    policies: str = Field(
        default="configs/policies.yaml",
        description="Policy file: per workflow and parameter, bounds, largest step and autonomy.",
    )
    sync_s: float = Field(
        default=1.0, gt=0, description="How often router replicas check the registry's champion (seconds)."
    )


class AppSettings(_Model):
    """Everything the service is started with."""

    workflows_dir: str = Field(default="configs/workflows", description="Folder of workflow YAML files.")
    database_url: str = Field(
        default="sqlite:///.flywheel/ledger.db",
        description="Ledger database URL; FLYWHEEL_DATABASE_URL overrides it.",
    )
    seed: int = Field(default=0, description="Seed of the routing draws (same run id, same choice).")
    agents: dict[str, AgentSettings] = Field(description="Agents by name; workflows' arms name them.")
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings, description="Sim agents' world.")
    serve: ServeSettings = Field(default_factory=ServeSettings, description="How the app is served.")
    learning: LearningSettings = Field(default_factory=LearningSettings, description="The online learning loop.")
    governance: GovernanceSettings = Field(
        default_factory=GovernanceSettings, description="Policies, review and how routers follow the registry."
    )
    ledger_batch: int = Field(default=256, ge=1, description="Most runs written in one ledger transaction.")

    def resolved_database_url(self) -> str:
        return os.environ.get("FLYWHEEL_DATABASE_URL") or self.database_url

    def absolute(self, base: Path | None = None) -> "AppSettings":
        """These settings with relative paths made absolute against `base` (default: cwd).

        Serve replicas run in other processes and other folders; they get absolute paths.
        """
        base = Path(base or Path.cwd()).resolve()

        def fix(p: str) -> str:
            return str(p if Path(p).is_absolute() else base / p)

        url = self.resolved_database_url()
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + fix(url[len(prefix):])
        sim = self.simulator.model_copy(update={"scenarios_dir": fix(self.simulator.scenarios_dir)})
        mlflow_uri = os.environ.get("FLYWHEEL_MLFLOW_URI") or self.learning.mlflow_tracking_uri
        if mlflow_uri.startswith(prefix) and not mlflow_uri.startswith(prefix + "/"):
            mlflow_uri = prefix + fix(mlflow_uri[len(prefix):])
        learning = self.learning.model_copy(
            update={"mlflow_tracking_uri": mlflow_uri, "mlflow_artifacts": fix(self.learning.mlflow_artifacts)}
        )
        governance = self.governance.model_copy(update={"policies": fix(self.governance.policies)})
        return self.model_copy(
            update={"workflows_dir": fix(self.workflows_dir), "database_url": url, "simulator": sim,
                    "learning": learning, "governance": governance}
        )


def load_settings(path: str | Path = "configs/app.yaml") -> AppSettings:
    """Read the app settings file (errors name the file, the field and the reason)."""
    return load_model(path, AppSettings)


def settings_from(data: "AppSettings | dict | str | Path") -> AppSettings:
    """Settings from a model, a dict (validated) or a path to a YAML file."""
    if isinstance(data, AppSettings):
        return data
    if isinstance(data, dict):
        return validate_data(data, AppSettings, "<app settings>")
    return load_settings(data)
