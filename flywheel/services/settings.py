"""The service's own config (app.yaml): where state lives, which agents exist, how to serve.

Settings are layered, strongest first: environment variables (``FLYWHEEL_<FIELD>``, nested
fields joined by ``__``, e.g. ``FLYWHEEL_LEARNING__PUBLISH_EVERY_S=2``; ``FLYWHEEL_DATABASE_URL``
and ``FLYWHEEL_MLFLOW_URI`` as documented), then the YAML file (or dict) the settings are built
from, then the defaults. With no file named, the packaged defaults (flywheel/configs/app.yaml)
are used. Input paths in a file (workflows_dir, simulator.scenarios_dir, governance.policies)
are relative to the file's folder; state paths (the SQLite ledger, the MLflow store and its
artifacts) stay relative to the working directory (./.flywheel/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from flywheel.services.limit_settings import LimitSettings, OutcomeLimitSettings
from flywheel.ledger import Ledger
from flywheel.ledger.engine import DEFAULT_SYNCHRONOUS, SqliteSynchronous
from flywheel.services.models import Price
from flywheel.workflows.loading import ConfigError, config_error, packaged_configs

ENV_PREFIX = "FLYWHEEL_"
LLM_ROUTE = "/llm"  # where the Serve LLM app (the vllm agents' models) is mounted on the proxy
MLFLOW_URI_ENV = "FLYWHEEL_MLFLOW_URI"
# Input paths that a settings file gives relative to its own folder.
FILE_RELATIVE: tuple[tuple[str, ...], ...] = (
    ("workflows_dir",),
    ("simulator", "scenarios_dir"),
    ("governance", "policies"),
)


def _packaged(name: str) -> str:
    return str(packaged_configs() / name)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSettings(_Model):
    """One agent: a Serve deployment of its own, with the backend that answers for it."""

    backend: Literal["sim", "replay", "openai", "vllm"] = Field(
        description=(
            "Agent backend. sim: a simulated model of the scenario; replay: the recorded outcomes "
            "of a real model in a RouterBench-format table; openai: any OpenAI-compatible server at "
            "base_url; vllm: a model of models.yaml served by Ray Serve LLM in this app."
        )
    )
    model: str = Field(
        description="Model behind the agent (sim: a model of the scenario; replay: a score column; "
        "openai: the server's model id; vllm: a name in models.yaml)."
    )
    data: str | None = Field(
        default=None, description="replay: the RouterBench-format table (.csv, .csv.gz or .parquet)."
    )
    base_url: str | None = Field(
        default=None,
        description="openai: the server's /v1 URL (required). vllm: default the Serve LLM app on this "
        "app's proxy (http://<serve.host>:<serve.port>/llm/v1).",
    )
    api_key_env: str | None = Field(
        default=None, description="openai: environment variable holding the API key (none: no key sent)."
    )
    timeout_s: float = Field(default=60.0, gt=0, description="openai/vllm: seconds one request may take.")
    max_retries: int = Field(default=3, ge=0, description="openai/vllm: retries on 429, 5xx and connection errors.")
    temperature: float = Field(
        default=0.0, ge=0, le=2, description="openai/vllm: sampling temperature (arms may differ only in it)."
    )
    price: Price | None = Field(
        default=None,
        description="openai/vllm: price per token (vllm: default the model's price in models.yaml).",
    )
    models_file: str | None = Field(
        default=None, description="vllm: the models file (default: the packaged configs/models.yaml)."
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
        if self.backend == "openai" and not self.base_url:
            raise ValueError("base_url: an openai agent needs its server's URL (e.g. http://host:8000/v1)")
        return self


class SimulatorSettings(_Model):
    """The simulated environment that sim agents answer from."""

    scenario: str = Field(default="stationary", description="Scenario name in scenarios_dir, or a path.")
    scenarios_dir: str = Field(
        default_factory=lambda: _packaged("scenarios"),
        description="Folder of scenario YAML files (default: the packaged scenarios).",
    )
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
        description=(
            "MLflow tracking and registry store; FLYWHEEL_MLFLOW_URI (or "
            "FLYWHEEL_LEARNING__MLFLOW_TRACKING_URI) overrides it."
        ),
    )
    mlflow_artifacts: str = Field(default=".flywheel/mlartifacts", description="Where version artifacts are stored.")


class TuningSettings(_Model):
    """The slow loop: Ray Tune jobs propose a workflow's thresholds, cost weight and exploration."""

    every_outcomes: int = Field(
        default=0, ge=0, description="Start a tune job after this many outcomes of a workflow (0: never by itself)."
    )
    after_drift: bool = Field(default=False, description="Start a tune job after a drift is detected.")
    trials: int = Field(default=24, ge=1, le=256, description="Trials of one tune job.")
    window_outcomes: int = Field(default=20000, ge=100, description="Most logged outcomes a job evaluates on.")
    max_human_share: float = Field(
        default=0.3, ge=0, le=1, description="Highest share of answered runs a candidate may send to a human."
    )
    cpus_per_trial: float = Field(default=0.5, gt=0, description="Ray CPUs each trial reserves.")
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster a job started outside the service joins (else RAY_ADDRESS, else a local Ray "
        "for the job only); a job inside a Serve replica runs on the service's own Ray.",
    )
    local_cpus: int = Field(default=2, ge=1, description="CPUs of the local Ray a job starts when it joins none.")
    resources_trials: int = Field(default=32, ge=1, le=256, description="Trials of one resource plan (`--resources`).")
    resources_window_s: float = Field(
        default=3600.0, gt=0, description="Seconds of logged runs a resource plan measures the load on (up to now)."
    )
    gpu_cost_cpus: float = Field(
        default=8.0, gt=0, description="What one accelerator costs in a resource plan, in CPUs (a CPU costs 1)."
    )


class GovernanceSettings(_Model):
    """What may change by itself, and how fast routers follow the registry."""

    policies: str = Field(
        default_factory=lambda: _packaged("policies.yaml"),
        description=(
            "Policy file: per workflow and parameter, bounds, largest step and autonomy "
            "(default: the packaged policies.yaml)."
        ),
    )
    sync_s: float = Field(
        default=1.0, gt=0, description="How often router replicas check the registry's champion (seconds)."
    )


class _MlflowUriEnv(PydanticBaseSettingsSource):
    """The documented short name FLYWHEEL_MLFLOW_URI for learning.mlflow_tracking_uri."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        uri = os.environ.get(MLFLOW_URI_ENV)
        return {"learning": {"mlflow_tracking_uri": uri}} if uri else {}


class AppSettings(BaseSettings):
    """Everything the service is started with (environment variables override the file)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
    )

    workflows_dir: str = Field(
        default_factory=lambda: _packaged("workflows"),
        description="Folder of workflow YAML files (default: the packaged workflows).",
    )
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
    tuning: TuningSettings = Field(default_factory=TuningSettings, description="The slow loop's tune jobs.")
    ledger_batch: int = Field(default=256, ge=1, description="Most runs written in one ledger transaction.")
    limits: LimitSettings = Field(
        default_factory=LimitSettings, description="What one client may send, and how often (per ingress replica)."
    )
    ledger_synchronous: SqliteSynchronous = Field(
        default=DEFAULT_SYNCHRONOUS,
        description=(
            "SQLite's PRAGMA synchronous on every ledger connection (WAL mode; PostgreSQL ignores it). "
            "NORMAL (the default): an acknowledged write survives the process being killed, but a power "
            "loss or OS crash may roll back the last commits. FULL: fsync on every commit, so acknowledged "
            "writes survive those too, at the cost of one fsync per write transaction. OFF and EXTRA as SQLite."
        ),
    )
    outcome_limits: OutcomeLimitSettings = Field(
        default_factory=OutcomeLimitSettings, description="The most an outcome may report (cost, latency)."
    )

    @model_validator(mode="before")
    @classmethod
    def _vllm_agents_call_this_proxy(cls, data: Any) -> Any:
        """vllm agents with no base_url call the Serve LLM app behind this app's own proxy."""
        if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
            return data
        serve = data.get("serve") or {}
        if isinstance(serve, BaseModel):
            serve = serve.model_dump()
        host = serve.get("host", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{host}:{serve.get('port', 8000)}{LLM_ROUTE}/v1"
        agents = {}
        for name, agent in data["agents"].items():
            if isinstance(agent, dict) and agent.get("backend") == "vllm" and not agent.get("base_url"):
                agent = {**agent, "base_url": url}
            agents[name] = agent
        return {**data, "agents": agents}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment first, then what the settings are built from (a file's data or a dict)."""
        return env_settings, _MlflowUriEnv(settings_cls), init_settings

    def resolved_database_url(self) -> str:
        """The ledger's URL (the environment is already applied; kept for callers)."""
        return self.database_url

    def open_ledger(self, url: str | None = None) -> Ledger:
        """A Ledger on `url` (default: the settings' URL) with these settings' synchronous level
        and outcome limits."""
        return Ledger(
            url or self.resolved_database_url(),
            synchronous=self.ledger_synchronous,
            outcome_limits=self.outcome_limits.limits(),
        )

    def absolute(self, base: Path | None = None) -> "AppSettings":
        """These settings with relative paths made absolute against `base` (default: cwd).

        Serve replicas run in other processes and other folders; they get absolute paths.
        """
        base = Path(base or Path.cwd()).resolve()

        def fix(p: str) -> str:
            return str(p if Path(p).is_absolute() else base / p)

        prefix = "sqlite:///"

        def fix_sqlite(url: str) -> str:
            if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
                return prefix + fix(url[len(prefix):])
            return url

        sim = self.simulator.model_copy(update={"scenarios_dir": fix(self.simulator.scenarios_dir)})
        learning = self.learning.model_copy(
            update={
                "mlflow_tracking_uri": fix_sqlite(self.learning.mlflow_tracking_uri),
                "mlflow_artifacts": fix(self.learning.mlflow_artifacts),
            }
        )
        governance = self.governance.model_copy(update={"policies": fix(self.governance.policies)})
        return self.model_copy(
            update={"workflows_dir": fix(self.workflows_dir), "database_url": fix_sqlite(self.database_url),
                    "simulator": sim, "learning": learning, "governance": governance}
        )


def default_settings_file() -> Path:
    """The packaged app.yaml: the settings used when no file is named."""
    return packaged_configs() / "app.yaml"


def _anchored(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`data` with the relative input paths of FILE_RELATIVE made absolute against `folder`."""
    out = dict(data)
    for keys in FILE_RELATIVE:
        parent = out
        for key in keys[:-1]:
            if not isinstance(parent.get(key), dict):
                break
            parent[key] = parent = dict(parent[key])
        else:
            value = parent.get(keys[-1])
            if isinstance(value, str) and not Path(value).is_absolute():
                parent[keys[-1]] = str(folder / value)
    return out


def build_settings(data: dict[str, Any], source: Path | str = "<app settings>") -> AppSettings:
    """Settings from a dict with the environment over it (errors name `source` and the field)."""
    try:
        return AppSettings(**data)
    except ValidationError as e:
        raise config_error(source, e) from None


def load_settings(path: str | Path | None = None) -> AppSettings:
    """Read an app settings file (default: the packaged app.yaml), the environment over it.

    Relative input paths in the file resolve against its folder. Errors name the file,
    the field and the reason.
    """
    path = Path(path) if path is not None else default_settings_file()
    if not path.is_file():
        raise ConfigError(path, [("", "cannot read: no such file")])
    try:
        data = YamlConfigSettingsSource(AppSettings, yaml_file=path).yaml_data
    except OSError as e:
        raise ConfigError(path, [("", f"cannot read: {e.strerror}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError(path, [("", f"not valid YAML: {e}")]) from None
    except (TypeError, ValueError):
        raise ConfigError(path, [("", "not a YAML mapping of settings")]) from None
    return build_settings(_anchored(data, path.parent.resolve()), path)


def settings_from(data: "AppSettings | dict | str | Path | None") -> AppSettings:
    """Settings from a model, a dict (validated, the environment over it) or a YAML file's path."""
    if isinstance(data, AppSettings):
        return data
    if isinstance(data, dict):
        return build_settings(data)
    return load_settings(data)
