"""The served path in one process, for benchmarks: what runs is what production serves.

`ServedLoop` puts together what the service runs, without Ray or HTTP:

- one Engine per workflow, deciding each run with the live config of a
  ConfigBook (as an ingress replica does), its runs written to a real Ledger
  (SQLite in a folder) in batches;
- human steps resumed through the engine's `resume` and the ledger's
  compare-and-set, the human's verdict posted as an outcome (as the runtime does);
- outcomes recorded in the ledger (duplicates counted there) and learned by a
  LearningLoop, which proposes versions at its cadence into the ledger's outbox;
  a Governor over a real MLflow registry (SQLite in the same folder) judges them
  by the shipped policies;
- after each publish the registry's champion (config and policy state) is applied
  to the ConfigBook, so the next runs are decided with it (as routers do).

Time is a `SimClock` the caller moves (seconds of simulated traffic), so the
`publish_every_s` cadence is deterministic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.learners.config_book import ConfigBook
from flywheel.learners.loop import LearningLoop
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.ledger import Ledger
from flywheel.ledger.records import OutcomeEvent, OutcomeReport, RunRecord
from flywheel.registry.governor import Governor, Outcome
from flywheel.registry.learned_config import LearnedConfig, initial_config
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.registry.policy import load_policies
from flywheel.workflows.loading import packaged_configs
from flywheel.workflows.agent_io import AgentCaller
from flywheel.workflows.engine import Engine, HumanDecision, failure_outcomes
from flywheel.workflows.reward import outcome_reward
from flywheel.workflows.spec import WorkflowSpec

POLICIES = packaged_configs() / "policies.yaml"


class SimClock:
    """Simulated seconds: the caller sets `now`; calling it reads it."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class VersionFacts:
    """One version the governor judged: its number, status and the thresholds it serves."""

    workflow: str
    number: int
    status: str
    thresholds: dict[str, float]


@dataclass(slots=True)
class ServedStats:
    """What the served path did: versions by status, runs decided per config version."""

    judged: Counter = field(default_factory=Counter)  # governor outcome status -> count
    decided_with: Counter = field(default_factory=Counter)  # config version label -> runs
    applied: list[str] = field(default_factory=list)  # champion versions made live, in order
    learned: int = 0  # outcomes the learning loop learned


class ServedLoop:
    """Engines, ledger, learning loop, governor and registry of a workflow set, in one process."""

    def __init__(
        self,
        specs: dict[str, WorkflowSpec],
        agents: AgentCaller,
        folder: str | Path,
        *,
        seed: int = 0,
        n_bits: int = 14,
        publish_every_outcomes: int = 200,
        publish_every_s: float = 10.0,
        policies: str | Path = POLICIES,
        learner: dict[str, Any] | None = None,
        clock: SimClock | None = None,
    ):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.specs = specs
        self.clock = clock or SimClock()
        self.ledger = Ledger(f"sqlite:///{folder}/ledger.db")
        self.ledger.upgrade()
        self.registry = MlflowRegistry(f"sqlite:///{folder}/mlflow.db", str(folder / "artifacts"))
        self.governor = Governor(self.registry, self.ledger, load_policies(policies), clock=self.clock)
        self.loop = LearningLoop(
            specs, self.ledger, self.registry, governor=self.governor, seed=seed, n_bits=n_bits,
            publish_every_outcomes=publish_every_outcomes, publish_every_s=publish_every_s, clock=self.clock,
        )
        if learner:  # benchmark variants: the loop's learners built with other arguments
            self.loop.learners = {
                wf: WorkflowLearner(spec, seed=seed, n_bits=n_bits, **learner) for wf, spec in specs.items()
            }
        self.book = ConfigBook([initial_config(s, seed=seed) for s in specs.values()])
        self.engines = {name: Engine(spec, agents, clock=self.clock) for name, spec in specs.items()}
        self.stats = ServedStats()

    # -- the request path ---------------------------------------------------

    async def start(self, run_id: str, workflow: str, data: dict[str, Any], metadata: dict[str, str]) -> RunRecord:
        """Run `workflow` on `data` with its live config, until it finishes, fails or waits for a human.

        The run is not stored yet: `store` writes a batch of them.
        """
        run = await self.engines[workflow].start(run_id, data, self.book.live(workflow), metadata)
        self.stats.decided_with[run.config_version] += 1
        return run

    def store(self, runs: list[RunRecord]) -> int:
        """Write runs just started, with the failed ones' failure outcomes (as the runtime does), in
        one transaction; returns how many outcomes that stored."""
        reports = self.ledger.insert_new_runs(runs, [failure_outcomes(r) for r in runs], self._reward_of)
        return sum(r.new for r in reports or [])

    async def resume(self, run: RunRecord, decision: HumanDecision) -> tuple[RunRecord, OutcomeEvent]:
        """Apply a human's decision to a stored waiting run; returns the updated run and the
        outcome event the verdict is (to post)."""
        updated = await self.engines[run.workflow].resume(run, decision)
        if not self.ledger.resume_run(run.run_id, expected_status="waiting", update=updated):
            raise RuntimeError(f"run {run.run_id} was not waiting")
        event = OutcomeEvent(
            event_id=f"human:{run.run_id}",
            run_id=run.run_id,
            success=decision.verdict == "approve",
            human_override=decision.verdict != "approve",
            source=f"human:{decision.reviewer}",
        )
        return updated, event

    def post(self, events: list[OutcomeEvent]) -> OutcomeReport:
        """Record outcome events (new, duplicate or rejected, as the ledger classifies them)."""
        return self.ledger.record_outcomes(events, self._reward_of)

    def _reward_of(self, workflow: str, event: OutcomeEvent, agent_cost: float, agent_latency_s: float) -> float:
        return outcome_reward(self.specs, workflow, event, agent_cost, agent_latency_s)


    # -- the learner and the routers ----------------------------------------

    def learn(self, force: bool = False) -> list[Outcome]:
        """Learn every stored outcome, propose what is due, publish it through the governor and
        make each new champion live; returns the governor's outcomes."""
        while learned := self.loop.step():
            self.stats.learned += learned
        self.loop.publish_due(force)
        judged = self.loop.publish_pending()
        for o in judged:
            self.stats.judged[o.status] += 1
        for wf in sorted({o.workflow for o in judged if o.champion_changed}):
            self._follow(wf)
        return judged

    def _follow(self, workflow: str) -> None:
        number = self.registry.champion_number(workflow)  # as a router's ChampionSync fetches it
        if number is None:
            return
        champion = self.registry.version(workflow, number, learner=False)
        if self.book.apply(champion.config, champion.policy_state):
            self.stats.applied.append(champion.config.version)

    def live_thresholds(self, workflow: str) -> dict[str, float]:
        """The gate thresholds runs of `workflow` are decided with now."""
        return dict(self.book.live(workflow).thresholds)

    def versions(self, workflow: str) -> list[VersionFacts]:
        """Every registered version of `workflow`, oldest first, with its status and thresholds."""
        return [
            VersionFacts(workflow, v.number, v.tags.get("status", ""),
                         dict(self.registry.config(workflow, v.number).thresholds))
            for v in self.registry.versions(workflow)
        ]

    def live_config(self, workflow: str) -> LearnedConfig:
        return self.book.learned(workflow)

    def close(self) -> None:
        self.ledger.dispose()
