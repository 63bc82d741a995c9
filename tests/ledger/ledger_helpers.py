"""Record builders and a thread race helper shared by the ledger tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flywheel.ledger.records import DecisionRecord, OutcomeEvent, RunRecord, StepRecord
from flywheel.workflows.reward import outcome_quality, reward
from flywheel.workflows.spec import Objective

T = TypeVar("T")

T0 = 1_700_000_000.123456
OBJECTIVE = Objective(quality_weight=1.0, cost_weight=10.0, latency_weight=0.1, override_penalty=0.5)


def reward_of(workflow: str, event: OutcomeEvent, agent_cost: float, agent_latency_s: float) -> float:
    """The service's reward rule with one fixed objective (for every workflow)."""
    quality = outcome_quality(event.success, event.quality)
    assert quality is not None
    return reward(
        OBJECTIVE,
        quality=quality,
        cost=event.cost if event.cost is not None else agent_cost,
        latency_s=event.latency_s if event.latency_s is not None else agent_latency_s,
        human_override=event.human_override,
    )


def make_run(
    run_id: str,
    *,
    workflow: str = "support",
    status: str = "completed",
    arm: str | None = "small",
    agent_output: dict[str, Any] | None = None,
    waiting_step: str | None = None,
    t: float = T0,
) -> RunRecord:
    """A run with a route step, an agent step and (when ``arm``) a decision."""
    output = agent_output if agent_output is not None else {"text": "hi", "cost": 0.02, "latency_s": 1.5}
    steps = [
        StepRecord(run_id, 0, "route", "route", "done", {"arm": arm}, t, t + 0.001),
        StepRecord(run_id, 1, "answer", "agent", "done", output, t + 0.001, t + 1.5),
    ]
    decision = (
        DecisionRecord(
            run_id=run_id,
            step_id="route",
            workflow=workflow,
            arm=arm,
            propensity=0.75,
            scores={"small": 0.5, "large": 0.25},
            features={"tier": "gold", "length": 12},
            config_version="v1",
            created_at=t,
        )
        if arm is not None
        else None
    )
    return RunRecord(
        run_id=run_id,
        workflow=workflow,
        status=status,  # type: ignore[arg-type]
        input={"prompt": "hello", "tier": "gold"},
        answer={"text": "hi"} if status == "completed" else None,
        config_version="v1",
        created_at=t,
        updated_at=t + 1.5,
        metadata={"tenant": "acme"},
        waiting_step=waiting_step,
        steps=steps,
        decision=decision,
    )


def race(contenders: list[Callable[[], T]]) -> list[T]:
    """Run the callables in threads released together by a barrier; their results in order."""
    barrier = threading.Barrier(len(contenders))

    def go(fn: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return fn()

    with ThreadPoolExecutor(max_workers=len(contenders)) as pool:
        futures = [pool.submit(go, fn) for fn in contenders]
        return [future.result(timeout=60) for future in futures]
