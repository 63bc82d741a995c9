"""The learned config: everything a learner may change for one workflow.

A version of it is what the registry stores and what routers decide with. Here
it has a content-derived version id; MLflow versions come with the learning loop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flywheel.workflows.prompts import PromptTemplate
from flywheel.workflows.spec import WorkflowSpec


def state_sha(state: bytes) -> str:
    """SHA-256 of a policy state: what a config's `routing.state_sha` names."""
    return hashlib.sha256(state).hexdigest()


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["softmax", "bandit"] = Field(
        default="softmax",
        description="softmax: fixed weights per arm; bandit: a learned contextual bandit (state shipped beside).",
    )
    weights: dict[str, float] = Field(
        default_factory=dict, description="softmax: score of each arm. bandit: mean reward per arm (evidence)."
    )
    temperature: float = Field(default=1.0, gt=0, description="Softmax temperature (exploration).")
    seed: int = Field(default=0, description="Seed of the per-run draw (same run, same choice).")
    exploration: float = Field(default=0.0, ge=0, le=1, description="bandit: share of runs explored.")
    state_sha: str = Field(default="", description="bandit: SHA-256 of the policy state it decides with.")


class LearnedConfig(BaseModel):
    """One version of a workflow's learned config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str = Field(description="Workflow this config belongs to.")
    version: str = Field(default="", description="Version id; derived from the content when empty.")
    thresholds: dict[str, float] = Field(description="Confidence threshold of each gate step.")
    routing: RoutingConfig = Field(description="The routing policy's parameters.")
    cost_weight: float = Field(ge=0, description="Reward lost per USD, as the router trades it.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Resource settings a tuner may change, keyed `<agent>.replicas`, "
        "`<agent>.max_ongoing_requests`, ... (nothing consumes them yet).",
    )
    prompts: dict[str, PromptTemplate] = Field(
        default_factory=dict,
        description="Prompt template and answer schema of each agent step, by step id: a rollback "
        "restores them. Empty: the workflow spec's own templates.",
    )

    def content_hash(self) -> str:
        """Hash of everything but the version; no resources (or prompts) hashes as before they existed.

        >>> cfg = LearnedConfig(workflow="w", thresholds={"g": 0.5}, routing=RoutingConfig(), cost_weight=1.0)
        >>> cfg.content_hash() == cfg.model_copy(update={"version": "x"}).content_hash()
        True
        >>> cfg.content_hash() == cfg.model_copy(update={"resources": {"a.replicas": 2.0}}).content_hash()
        False
        >>> from flywheel.workflows.prompts import OutputField
        >>> p = PromptTemplate(system="", user="{x}", output=[OutputField(name="a", type="text")], decisive="a")
        >>> cfg.content_hash() == cfg.model_copy(update={"prompts": {"s": p}}).content_hash()
        False
        """
        exclude = {"version"} | {name for name in ("resources", "prompts") if not getattr(self, name)}
        body = self.model_dump(exclude=exclude)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    def with_version(self) -> "LearnedConfig":
        """This config with its version set (content hash) if it had none."""
        if self.version:
            return self
        return self.model_copy(update={"version": f"{self.workflow}@static-{self.content_hash()}"})


def initial_config(spec: WorkflowSpec, seed: int = 0) -> LearnedConfig:
    """The config a workflow starts from: its spec's thresholds and routing weights.

    >>> from flywheel.workflows.loading import load_model
    >>> spec = load_model("configs/workflows/ticket_triage.yaml", WorkflowSpec)
    >>> cfg = initial_config(spec)
    >>> cfg.thresholds, cfg.version.startswith("ticket_triage@static-")
    ({'confidence': 0.7}, True)
    """
    return LearnedConfig(
        workflow=spec.name,
        thresholds=spec.gates,
        routing=RoutingConfig(
            weights=spec.routing.weights, temperature=spec.routing.temperature, seed=seed
        ),
        cost_weight=spec.objective.cost_weight,
        prompts=spec.prompts,
    ).with_version()
