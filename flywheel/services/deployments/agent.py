"""One Serve deployment per agent: it owns the agent's backend (a model, a GPU, a client)."""

from __future__ import annotations

from typing import Any

from ray import serve

from flywheel.services.agents.factory import make_backend
from flywheel.services.serve_config import agent_deployment_name
from flywheel.services.settings import AgentSettings, SimulatorSettings
from flywheel.workflows.agent_io import AgentError, AgentRequest

__all__ = ["AgentDeployment", "agent_deployment_name"]


@serve.deployment
class AgentDeployment:
    """Answers AgentRequests with its backend. A backend failure comes back as
    {"error": ...} rather than an exception, so the caller can record it cheaply."""

    def __init__(self, name: str, agent: dict[str, Any], simulator: dict[str, Any]):
        self.name = name
        self.backend = make_backend(
            AgentSettings.model_validate(agent), SimulatorSettings.model_validate(simulator)
        )

    async def run(self, request: AgentRequest) -> Any:
        try:
            return await self.backend.run(request)
        except AgentError as e:
            return {"error": str(e)}

    async def __del__(self) -> None:
        await self.backend.close()
