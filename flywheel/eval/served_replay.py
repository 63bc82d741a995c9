"""The replay benchmark's bandit-feedback pass through the served path, at one cost weight.

A workflow `replay` (prompt in, route among the table's models, the model answers,
finish) runs every prompt of the table, in the same seeded order as the in-process
passes, through a ServedLoop: the engine decides with the live version, the
ReplayAgent answers as the model did when it was recorded, the chosen model's
recorded score is posted as the run's outcome at once (bandit feedback), and the
learning loop learns it and publishes versions through the governor at its cadence.
So the router is the service's: a WorkflowLearner with its defaults (hashed prompt
words, no embeddings), deciding with the last published version.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from flywheel.eval.replay_agent import ReplayAgent
from flywheel.eval.routerbench import RouterBenchTable
from flywheel.eval.served import ServedLoop, SimClock
from flywheel.ledger.records import OutcomeEvent, RunRecord
from flywheel.workflows.agent_io import AgentRequest, AgentResult
from flywheel.workflows.spec import WorkflowSpec

SERVED_WEIGHT = 0.12
"""The cost weight of the served pass, in units of the dearest model's mean cost (a point of the grid)."""
WORKFLOW = "replay"


def replay_spec(table: RouterBenchTable, cost_weight: float) -> WorkflowSpec:
    """The workflow a replay runs: route among the table's models on the prompt, answer, finish.

    `cost_weight` is in units of the dearest model's mean cost, as the sweep's weights.
    """
    scale = max(float(table.costs.mean(axis=0).max()), 1e-12)
    return WorkflowSpec.model_validate({
        "name": WORKFLOW,
        "description": f"Replay of {table.path}",
        "prompt_field": "prompt",
        "inputs": [{"name": "prompt", "type": "text", "description": "The recorded prompt."}],
        "features": {"fields": [], "prompt": True},
        "objective": {"quality_weight": 1.0, "cost_weight": cost_weight / scale, "latency_weight": 0.0,
                      "override_penalty": 0.0},
        "routing": {"weights": {m: 0.0 for m in table.models}, "temperature": 1.0},
        "steps": [
            {"id": "route", "kind": "route", "arms": list(table.models)},
            {"id": "answer", "kind": "agent"},
            {"id": "done", "kind": "finish"},
        ],
    })


class TableAgents:
    """The AgentCaller of a replay: one ReplayAgent per model of the table."""

    def __init__(self, table: RouterBenchTable):
        self.agents = {m: ReplayAgent(table, m) for m in table.models}

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult:
        return await self.agents[agent].run(request)


def served_pass(
    table: RouterBenchTable,
    order: np.ndarray,
    learn_q: np.ndarray,
    cost_weight: float = SERVED_WEIGHT,
    *,
    seed: int = 0,
    batch: int = 25,
    runs_per_s: float = 50.0,
    folder: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Stream `order`'s prompts through the served path; returns the chosen model's index per
    prompt (in stream order) and what the served path did (versions, seconds)."""
    spec = replay_spec(table, cost_weight)
    with tempfile.TemporaryDirectory(prefix="flywheel-replay-") as tmp:
        started = time.perf_counter()
        served = ServedLoop({WORKFLOW: spec}, TableAgents(table), folder or tmp, seed=seed, clock=SimClock())
        try:
            chosen = asyncio.run(_stream(served, table, order, learn_q, batch, runs_per_s, progress))
        finally:
            served.close()
        stats = served.stats
        return chosen, {
            "cost_weight": cost_weight,
            "versions_judged": dict(stats.judged),
            "champions_applied": len(stats.applied),
            "runs_decided_by_published_versions": sum(n for k, n in stats.decided_with.items() if "@v" in k),
            "learned": stats.learned,
            "seconds": round(time.perf_counter() - started, 2),
        }


async def _stream(served: ServedLoop, table: RouterBenchTable, order: np.ndarray, learn_q: np.ndarray,
                  batch: int, runs_per_s: float, progress: Callable[[int, int], None] | None) -> np.ndarray:
    index = {m: j for j, m in enumerate(table.models)}
    chosen = np.empty(len(order), dtype=np.int64)
    rows = order.tolist()
    for first in range(0, len(rows), batch):
        runs: list[RunRecord] = []
        events: list[OutcomeEvent] = []
        for k in range(first, min(len(rows), first + batch)):
            served.clock.now = k / runs_per_s
            i = rows[k]
            run = await served.start(f"replay-{k}", WORKFLOW, {"prompt": table.prompts[i]}, {})
            assert run.decision is not None and run.status == "completed", run.status
            j = index[run.decision.arm]
            chosen[k] = j
            runs.append(run)
            events.append(OutcomeEvent(event_id=f"replay-{k}/outcome", run_id=run.run_id,
                                       quality=float(learn_q[i, j]), source="replay"))
        served.store(runs)
        served.post(events)
        served.learn()
        if progress is not None:
            progress(min(len(rows), first + batch), len(rows))
    return chosen
