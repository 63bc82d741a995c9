"""The replay backend: real recorded outcomes of real models answer (flywheel.eval.replay_agent)."""

from __future__ import annotations

from flywheel.eval.replay_agent import REPLAY_CONFIDENCE, ReplayAgent as _ReplayAgent
from flywheel.services.agents.base import AgentBackend

__all__ = ["REPLAY_CONFIDENCE", "ReplayAgent"]


class ReplayAgent(_ReplayAgent, AgentBackend):
    """The replay agent as a service backend."""
