"""The service's behaviour, in plain Python: runs, resumes, outcomes, stats.

The HTTP API calls this; under Ray Serve the agents behind it are deployments,
in tests and `--local` mode they are in-process backends. No Ray import here.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from flywheel.registry.learned_config import initial_config
from flywheel.learners.config_book import ConfigBook
from flywheel.services.settings import AppSettings
from flywheel.workflows.agent_io import AgentCaller
from flywheel.ledger.batch_writer import BatchWriter
from flywheel.workflows.engine import Engine, HumanDecision
from flywheel.ledger import Ledger
from flywheel.workflows.loading import load_dir
from flywheel.workflows.inputs import input_problems
from flywheel.ledger.records import (
    OutcomeEvent,
    OutcomeReport,
    RunRecord,
    RunView,
    WorkflowStats,
)
from flywheel.workflows.reward import outcome_quality, reward
from flywheel.workflows.spec import WorkflowSpec

if TYPE_CHECKING:
    from flywheel.services.governance_api import GovernanceClient


class UnknownWorkflow(LookupError):
    pass


class UnknownRun(LookupError):
    pass


class InvalidInput(ValueError):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))


class Conflict(RuntimeError):
    pass


def load_workflows(settings: AppSettings) -> dict[str, WorkflowSpec]:
    """Every workflow of the settings' folder, checked against the configured agents."""
    by_file = load_dir(settings.workflows_dir, WorkflowSpec)
    for stem, spec in by_file.items():
        unknown = [a for a in spec.arms if a not in settings.agents]
        if unknown:
            raise ValueError(
                f"{settings.workflows_dir}/{stem}.yaml: steps.route.arms: "
                f"no agent named {unknown} in the app settings' agents"
            )
    return {spec.name: spec for spec in by_file.values()}


class Runtime:
    """Runs workflows: route, call the agent, gate, wait for humans; logs all in the ledger."""

    def __init__(
        self,
        specs: dict[str, WorkflowSpec],
        ledger: Ledger,
        agents: AgentCaller,
        configs: ConfigBook,
        ledger_batch: int = 256,
    ):
        self.specs = specs
        self.ledger = ledger
        self.configs = configs
        self.engines = {name: Engine(spec, agents) for name, spec in specs.items()}
        self.writer: BatchWriter[RunRecord] = BatchWriter(ledger.insert_new_runs, max_batch=ledger_batch)
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._on_outcomes: list[Callable[[list[int]], object]] = []
        # Review and operator operations (set by whoever serves: the router deployment's
        # client on Serve, in-process operations locally); None when there is no registry.
        self.governance: GovernanceClient | None = None

    def on_outcomes(self, callback: Callable[[list[int]], object]) -> None:
        """Call `callback(positions)` after new outcomes are stored (e.g. to wake the learner)."""
        self._on_outcomes.append(callback)

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when the runtime closes (background tasks tied to it)."""
        self._on_close.append(callback)

    @classmethod
    def from_settings(cls, settings: AppSettings, agents: AgentCaller) -> "Runtime":
        specs = load_workflows(settings)
        ledger = Ledger(settings.resolved_database_url())
        ledger.upgrade()
        configs = ConfigBook([initial_config(s, seed=settings.seed) for s in specs.values()])
        return cls(specs, ledger, agents, configs, ledger_batch=settings.ledger_batch)

    def spec(self, workflow: str) -> WorkflowSpec:
        try:
            return self.specs[workflow]
        except KeyError:
            raise UnknownWorkflow(f"unknown workflow {workflow!r}") from None

    async def start_run(
        self, workflow: str, data: dict[str, Any], metadata: dict[str, str] | None = None
    ) -> RunRecord:
        spec = self.spec(workflow)
        problems = input_problems(spec, data)
        if problems:
            raise InvalidInput(problems)
        run = await self.engines[workflow].start(
            uuid.uuid4().hex, data, self.configs.live(workflow), metadata,
            prompts=self.configs.learned(workflow).prompts,
        )
        await self.writer.submit(run)  # durable before it is acknowledged
        return run

    async def get_run(self, run_id: str) -> RunView:
        view = await asyncio.to_thread(self.ledger.get_run, run_id)
        if view is None:
            raise UnknownRun(f"unknown run {run_id!r}")
        return view

    async def resume(self, run_id: str, decision: HumanDecision) -> RunRecord:
        """Apply a human's decision to a waiting run, exactly once (Conflict otherwise)."""
        view = await self.get_run(run_id)
        if view.run.status != "waiting":
            raise Conflict(f"run {run_id} is {view.run.status}, not waiting for a human")
        updated = await self.engines[view.run.workflow].resume(view.run, decision)
        ok = await asyncio.to_thread(
            self.ledger.resume_run, run_id, expected_status="waiting", update=updated
        )
        if not ok:
            raise Conflict(f"run {run_id} was resumed by another request")
        # The human's verdict is feedback on the agent's answer, like any outcome.
        await self.post_outcomes(
            [
                OutcomeEvent(
                    event_id=f"human:{run_id}",
                    run_id=run_id,
                    success=decision.verdict == "approve",
                    human_override=decision.verdict != "approve",
                    source=f"human:{decision.reviewer}",
                )
            ]
        )
        return updated

    async def post_outcomes(self, events: list[OutcomeEvent]) -> OutcomeReport:
        report = await asyncio.to_thread(self.ledger.record_outcomes, events, self._reward_of)
        if report.new_positions:
            for callback in self._on_outcomes:
                callback(report.new_positions)
        return report

    def _reward_of(
        self, workflow: str, event: OutcomeEvent, agent_cost: float, agent_latency_s: float
    ) -> float:
        quality = outcome_quality(event.success, event.quality) or 0.0
        spec = self.specs.get(workflow)
        if spec is None:
            return quality
        return reward(
            spec.objective,
            quality=quality,
            cost=event.cost if event.cost is not None else agent_cost,
            latency_s=event.latency_s if event.latency_s is not None else agent_latency_s,
            human_override=event.human_override,
        )

    async def stats(self, workflow: str) -> WorkflowStats:
        self.spec(workflow)
        return await asyncio.to_thread(self.ledger.workflow_stats, workflow)

    async def close(self) -> None:
        for callback in self._on_close:
            await callback()
        await self.writer.close()
        self.ledger.dispose()
