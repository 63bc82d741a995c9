"""Build an agent backend from its settings."""

from __future__ import annotations

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
    raise ValueError(f"backend: unknown agent backend {agent.backend!r}")
