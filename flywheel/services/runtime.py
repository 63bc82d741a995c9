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
from flywheel.workflows.engine import Engine, HumanDecision, failure_outcomes
from flywheel.ledger import Ledger
from flywheel.ledger.store import OutcomeNotStored
from flywheel.ledger.observe import outcome_facts
from flywheel.services.metrics import Metrics, PrometheusBackend
from flywheel.services.tracing import TRACEPARENT, run_span
from flywheel.workflows.loading import load_dir
from flywheel.workflows.inputs import input_problems
from flywheel.workflows.run_limits import RunLimits, size_problems
from flywheel.ledger.records import (
    OutcomeEvent,
    OutcomeReport,
    RunRecord,
    RunView,
    WorkflowStats,
)
from flywheel.workflows.reward import outcome_reward
from flywheel.workflows.spec import WorkflowSpec

if TYPE_CHECKING:
    from flywheel.services.governance_api import GovernanceClient


OUTCOME_BATCHES_PER_COMMIT = 64
"""Most outcome batches (requests) that share one ledger transaction."""


class UnknownWorkflow(LookupError):
    pass


class UnknownRun(LookupError):
    pass


class InvalidInput(ValueError):
    """A run's input (or metadata) is not acceptable: ``problems`` are (field, reason) pairs
    under ``section`` ("input"), or (path, reason) pairs with the path's tuple from the body."""

    def __init__(self, problems: list[tuple[str, str]] | list[tuple[tuple[str, ...], str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))

    def locs(self) -> list[tuple[tuple[str, ...], str]]:
        """Each problem as (location in the request body, reason)."""
        return [(f if isinstance(f, tuple) else ("input", f), r) for f, r in self.problems]


HUMAN_EVENT_PREFIX = "human:"
"""Outcome event ids in this namespace are written by resumes only (``human:<run_id>``)."""


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
        run_limits: RunLimits | None = None,
        metrics: Metrics | None = None,
    ):
        self.specs = specs
        self.ledger = ledger
        self.configs = configs
        self.engines = {name: Engine(spec, agents) for name, spec in specs.items()}
        base = run_limits or RunLimits()
        self.run_limits = {name: spec.limits.over(base) for name, spec in specs.items()}
        # A failed run's outcome (`failure:<run_id>`) is written with it: durable, and the learner hears of it.
        self.writer: BatchWriter[RunRecord, OutcomeReport] = BatchWriter(self._store_new_runs, max_batch=ledger_batch)
        # Outcome batches of concurrent requests share a transaction too (group commit).
        self.outcome_writer: BatchWriter[list[OutcomeEvent], OutcomeReport] = BatchWriter(
            self._record_outcome_batches, max_batch=OUTCOME_BATCHES_PER_COMMIT
        )
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._on_outcomes: list[Callable[[list[int]], object]] = []
        self._new_positions: list[int] = []  # stored, not yet told to the on_outcomes callbacks
        # Review and operator operations (set by whoever serves: the router deployment's
        # client on Serve, in-process operations locally); None when there is no registry.
        self.governance: GovernanceClient | None = None
        # Who counts is the server's choice (Ray's metrics on Serve); prometheus-client by default.
        self.metrics = metrics or Metrics(PrometheusBackend())

    def on_outcomes(self, callback: Callable[[list[int]], object]) -> None:
        """Call `callback(positions)` after new outcomes are stored (e.g. to wake the learner).

        Batches committed together are told in one call.
        """
        self._on_outcomes.append(callback)

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when the runtime closes (background tasks tied to it)."""
        self._on_close.append(callback)

    @classmethod
    def from_settings(
        cls, settings: AppSettings, agents: AgentCaller, metrics: Metrics | None = None
    ) -> "Runtime":
        specs = load_workflows(settings)
        ledger = settings.open_ledger()
        ledger.upgrade()
        configs = ConfigBook([initial_config(s, seed=settings.seed) for s in specs.values()])
        return cls(specs, ledger, agents, configs, ledger_batch=settings.ledger_batch,
                   run_limits=settings.limits.runs, metrics=metrics)

    def spec(self, workflow: str) -> WorkflowSpec:
        try:
            return self.specs[workflow]
        except KeyError:
            raise UnknownWorkflow(f"unknown workflow {workflow!r}") from None

    async def start_run(
        self,
        workflow: str,
        data: dict[str, Any],
        metadata: dict[str, str] | None = None,
        traceparent: str | None = None,
        on_decided: Callable[[RunRecord], None] | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> RunRecord:
        """Run `workflow` on `data`. The run joins the caller's W3C trace (`traceparent`) or
        starts one; the agent call gets the run's span as its parent (metadata `traceparent`).
        `on_decided` and `on_delta` follow the run as it goes (Engine.start): a streamed chat."""
        spec = self.spec(workflow)
        sized = size_problems(self.run_limits[workflow], data, metadata or {})
        if sized:
            raise InvalidInput(sized)
        problems = input_problems(spec, data)
        if problems:
            raise InvalidInput(problems)
        span = run_span(traceparent)
        run = await self.engines[workflow].start(
            uuid.uuid4().hex, data, self.configs.live(workflow), {**(metadata or {}), TRACEPARENT: span.header},
            prompts=self.configs.learned(workflow).prompts, on_decided=on_decided, on_delta=on_delta,
        )
        run.metadata = dict(metadata or {})  # the caller's tags; the traceparent went to the agent
        run.trace_id = span.trace_id
        report = await self.writer.submit(run)  # durable before it is acknowledged
        self.metrics.run(run, started=True)
        if report is not None and run.status == "failed":  # its failure outcome is stored, for the learner
            self._tell_soon(report.new_positions)
            await self._count_outcomes(report)
        return run

    async def get_run(self, run_id: str) -> RunView:
        view = await asyncio.to_thread(self.ledger.get_run, run_id)
        if view is None:
            raise UnknownRun(f"unknown run {run_id!r}")
        return view

    async def resume(self, run_id: str, decision: HumanDecision) -> RunRecord:
        """Apply a human's decision to a waiting run, exactly once (Conflict otherwise).

        The run's new state and the human's verdict (outcome ``human:<run_id>``, from
        ``human:<reviewer>``) are stored in one transaction: both or neither.
        """
        view = await self.get_run(run_id)
        if view.run.status != "waiting":
            raise Conflict(f"run {run_id} is {view.run.status}, not waiting for a human")
        updated = await self.engines[view.run.workflow].resume(view.run, decision)
        # The human's verdict is feedback on the agent's answer, like any outcome.
        verdict = OutcomeEvent(
            event_id=f"{HUMAN_EVENT_PREFIX}{run_id}",
            run_id=run_id,
            success=decision.verdict == "approve",
            human_override=decision.verdict != "approve",
            source=f"human:{decision.reviewer}",
        )
        try:
            report = await asyncio.to_thread(
                self.ledger.resume_with_outcome, run_id, expected_status="waiting", update=updated,
                outcome=verdict, reward_of=self._reward_of,
            )
        except OutcomeNotStored as e:
            raise Conflict(str(e)) from None
        if report is None:
            raise Conflict(f"run {run_id} was resumed by another request")
        self.metrics.run(updated, started=False)
        await self._count_outcomes(report)
        for callback in self._on_outcomes:
            callback(report.new_positions)
        return updated

    async def post_outcomes(self, events: list[OutcomeEvent]) -> OutcomeReport:
        """Record a batch of outcomes; returns once it is committed (with concurrent batches)."""
        report = await self.outcome_writer.submit(events)
        assert report is not None
        self._tell_soon(report.new_positions)
        await self._count_outcomes(report)
        return report

    def _tell_soon(self, positions: list[int]) -> None:
        """Tell the on_outcomes callbacks of new positions, in one call per loop turn.

        Call before any other await: a commit's batches all wake up on this loop turn, ahead of the call.
        """
        if positions and self._on_outcomes:
            if not self._new_positions:  # the first of a commit's batches to wake up schedules the call
                asyncio.get_running_loop().call_soon(self._tell_new_outcomes)
            self._new_positions.extend(positions)

    async def _count_outcomes(self, report: OutcomeReport) -> None:
        """The metrics of a committed batch (lag and reward of the new ones read back by position)."""
        facts = []
        if report.new_positions:
            facts = await asyncio.to_thread(outcome_facts, self.ledger.engine, report.new_positions)
        self.metrics.outcomes(report, facts)

    def _store_new_runs(self, runs: list[RunRecord]) -> list[OutcomeReport] | None:
        return self.ledger.insert_new_runs(runs, [failure_outcomes(r) for r in runs], self._reward_of)

    def _record_outcome_batches(self, batches: list[list[OutcomeEvent]]) -> list[OutcomeReport]:
        return self.ledger.record_outcome_batches(batches, self._reward_of)

    def _tell_new_outcomes(self) -> None:
        positions, self._new_positions = sorted(self._new_positions), []
        for callback in self._on_outcomes:
            callback(positions)

    def _reward_of(
        self, workflow: str, event: OutcomeEvent, agent_cost: float, agent_latency_s: float
    ) -> float:
        return outcome_reward(self.specs, workflow, event, agent_cost, agent_latency_s)


    async def stats(self, workflow: str) -> WorkflowStats:
        self.spec(workflow)
        return await asyncio.to_thread(self.ledger.workflow_stats, workflow)

    async def close(self) -> None:
        for callback in self._on_close:
            await callback()
        await self.writer.close()
        await self.outcome_writer.close()
        self.ledger.dispose()
