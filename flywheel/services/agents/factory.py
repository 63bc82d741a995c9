"""Build an agent backend from its settings."""

from __future__ import annotations

import os

from flywheel.services.agents.base import AgentBackend
from flywheel.services.settings import AgentSettings, SimulatorSettings


def make_backend(agent: AgentSettings, simulator: SimulatorSettings) -> AgentBackend:
    if agent.backend == "sim":
        from flywheel.sim import Environment, load_scenario
        from flywheel.services.agents.sim import SimAgent

        scenario = load_scenario(simulator.scenario, simulator.scenarios_dir)
        return SimAgent(Environment(scenario), agent.model, simulator.latency_scale)
    if agent.backend == "replay":
        from flywheel.services.agents.replay import ReplayAgent

        assert agent.data is not None  # checked by AgentSettings
        return ReplayAgent(agent.data, agent.model)
    if agent.backend in ("openai", "vllm"):
        from flywheel.services.agents.openai_backend import OpenAIBackend
        from flywheel.services.models import load_models

        price = agent.price
        if price is None and agent.backend == "vllm":
            price = load_models(agent.models_file).get(agent.model).price
        assert agent.base_url is not None  # checked (openai) or filled in (vllm) by the settings
        return OpenAIBackend(
            agent.base_url,
            agent.model,
            price=price,
            api_key=os.environ.get(agent.api_key_env) if agent.api_key_env else None,
            timeout_s=agent.timeout_s,
            max_retries=agent.max_retries,
            temperature=agent.temperature,
        )
    raise ValueError(f"backend: unknown agent backend {agent.backend!r}")
