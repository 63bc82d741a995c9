"""The simulated agent: a model of the scenario's world answers an agent request."""

from __future__ import annotations

import asyncio

from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult

from .environment import Environment, ModelUnavailable

TICK_KEY = "sim_tick"
"""Request metadata naming the run's tick in the simulated traffic."""


class SimAgent:
    """Answers as the scenario's `model` would at the request's tick (metadata `sim_tick`).

    The tick is the request's position in the simulated traffic, so events such as
    "the model degrades at run N" happen at the same point on every replica.
    `latency_scale` is the fraction of the simulated latency really slept. An
    unavailable model is an AgentError, as a real agent that is down.
    """

    def __init__(self, environment: Environment, model: str, latency_scale: float = 0.0):
        self.environment = environment
        self.model = model
        self.latency_scale = latency_scale

    async def run(self, request: AgentRequest) -> AgentResult:
        tick = int(request.metadata.get(TICK_KEY, 0))
        try:
            r = self.environment.respond(self.model, request.workflow, request.input, tick)
        except ModelUnavailable as e:
            raise AgentError(f"agent model {self.model!r} is unavailable: {e}") from None
        if self.latency_scale > 0:
            await asyncio.sleep(r.latency_s * self.latency_scale)
        return AgentResult(
            answer=r.answer,
            confidence=r.confidence,
            tokens_in=r.tokens_in,
            tokens_out=r.tokens_out,
            cost=r.cost,
            latency_s=r.latency_s,
            model=self.model,
        )

    async def close(self) -> None:
        """Nothing to release."""
