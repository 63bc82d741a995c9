"""A failed agent call is an outcome the learner hears of: the run and its `failure:<run_id>`
outcome are stored in one transaction, and after `down_after` failed runs the learning loop
takes the arm out of routing, with no client reporting anything (real ledger, real loop)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from flywheel.learners.loop import LearningLoop
from flywheel.ledger.records import OutcomeEvent
from flywheel.services.agents.local import LocalAgents
from flywheel.services.http.schemas import OutcomeIn
from flywheel.services.runtime import Runtime
from flywheel.services.settings import load_settings
from flywheel.workflows.agent_io import AgentRequest, AgentResult
from flywheel.workflows.engine import FAILURE_EVENT_PREFIX
from flywheel.workflows.reward import reward

WF = "ticket_triage"
BROKEN = "strong"
TICKET = {"text": "I was charged twice", "product": "billing", "customer_tier": "pro", "channel": "email"}


class OneArmTimesOut:
    """The simulator's agents, except that `BROKEN` raises (a timeout, not an AgentError)."""

    def __init__(self, agents: LocalAgents):
        self.agents = agents
        self.calls = 0

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult:
        if agent == BROKEN:
            self.calls += 1
            raise TimeoutError("the agent did not answer within 30 s")
        return await self.agents(agent, request)


def test_a_raising_agent_is_down_after_three_failed_runs(database_url):
    settings = load_settings("configs/app.yaml")  # on SQLite and on PostgreSQL
    settings = settings.model_copy(update={
        "database_url": database_url,
        "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0})})
    agents = OneArmTimesOut(LocalAgents.from_settings(settings))
    told: list[list[int]] = []

    async def scenario() -> None:
        runtime = Runtime.from_settings(settings, agents)
        runtime.on_outcomes(told.append)
        loop = LearningLoop(runtime.specs, runtime.ledger, None, seed=0, n_bits=12)
        learner = loop.learners[WF]
        spec = runtime.specs[WF]
        failed: list[str] = []
        fails = {arm: 0 for arm in spec.arms}  # the simulator's own agents fail now and then too
        for i in range(200):  # the broken arm is chosen about one run in four
            run = await runtime.start_run(WF, {**TICKET, "text": f"charged twice, order {i}"})
            await asyncio.sleep(0)  # the on_outcomes call is scheduled on the loop
            arm = run.decision.arm
            fails[arm] += run.status == "failed"
            assert loop.step() == (run.status == "failed")  # a failed run's outcome, and nothing else
            assert set(learner.down_arms) == {a for a, n in fails.items() if n >= learner.down_after}
            if arm != BROKEN:
                continue
            assert run.status == "failed"
            agent_step = next(s for s in run.steps if s.kind == "agent")
            assert agent_step.status == "failed" and "TimeoutError" in agent_step.output["error"]
            failed.append(run.run_id)
            view = await runtime.get_run(run.run_id)
            assert view.run.status == "failed"
            [outcome] = view.outcomes  # stored with the run, no client involved
            assert outcome.event_id == f"{FAILURE_EVENT_PREFIX}{run.run_id}" and outcome.success is False
            # the workflow's reward of a failure: no quality, and no cost or latency (no answer)
            assert outcome.reward == reward(spec.objective, quality=0.0, cost=0.0, latency_s=0.0)
            assert told[-1] == [outcome.position]  # the learner is woken as for any outcome
            if len(failed) == learner.down_after:
                break
        assert len(failed) == learner.down_after == 3 and agents.calls == 3
        assert BROKEN in learner.down_arms
        # idempotent: the same failure outcome again is a duplicate, and clients may not post it
        again = await runtime.post_outcomes([OutcomeEvent(event_id=f"{FAILURE_EVENT_PREFIX}{failed[0]}",
                                                          run_id=failed[0], success=False)])
        assert (again.new, again.duplicate) == (0, 1)
        with pytest.raises(ValidationError, match="written by the service"):
            OutcomeIn(event_id=f"{FAILURE_EVENT_PREFIX}{failed[0]}", run_id=failed[0], success=False)
        await runtime.close()

    asyncio.run(scenario())
