"""Agent backends and the factory that builds one from settings."""

from flywheel.services.agents.base import AgentBackend
from flywheel.services.agents.factory import make_backend

__all__ = ["AgentBackend", "make_backend"]
