"""The sim backend: a model of the scenario's simulated world answers (flywheel.sim.agent)."""

from __future__ import annotations

from flywheel.services.agents.base import AgentBackend
from flywheel.sim.agent import TICK_KEY, SimAgent as _SimAgent

__all__ = ["SimAgent", "TICK_KEY"]


class SimAgent(_SimAgent, AgentBackend):
    """The simulator's agent as a service backend."""
