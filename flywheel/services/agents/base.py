"""Agent backends: what answers for an agent (sim here; replay, vllm and openai later)."""

from __future__ import annotations

import abc

from flywheel.workflows.agent_io import AgentRequest, AgentResult


class AgentBackend(abc.ABC):
    """Answers agent requests. Async, so network backends (vLLM, OpenAI) fit the same shape."""

    @abc.abstractmethod
    async def run(self, request: AgentRequest) -> AgentResult:
        """The agent's answer, confidence, token usage, cost and latency; AgentError if it cannot."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (connections, engines)."""
