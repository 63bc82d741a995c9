"""Agents as in-process backends: the same runtime and API without Ray (tests, `flywheel up --local`)."""

from __future__ import annotations

from flywheel.services.agents import AgentBackend, make_backend
from flywheel.services.settings import AppSettings
from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult


class LocalAgents:
    """The AgentCaller over backends living in this process."""

    def __init__(self, backends: dict[str, AgentBackend]):
        self.backends = backends

    @classmethod
    def from_settings(cls, settings: AppSettings) -> "LocalAgents":
        return cls({n: make_backend(a, settings.simulator) for n, a in settings.agents.items()})

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult:
        backend = self.backends.get(agent)
        if backend is None:
            raise AgentError(f"no agent named {agent!r}")
        return await backend.run(request)
