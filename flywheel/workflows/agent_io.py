"""What an agent is asked and what it answers, whatever its backend (sim, replay, vllm, openai)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class AgentRequest:
    workflow: str
    run_id: str
    prompt: str
    input: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AgentResult:
    answer: dict[str, Any]
    confidence: float  # 0..1, the agent's own estimate that the answer is right
    tokens_in: int
    tokens_out: int
    cost: float  # USD
    latency_s: float  # as the backend measured or reports it
    model: str


class AgentError(RuntimeError):
    """An agent could not answer (down, timed out, refused)."""


class AgentCaller(Protocol):
    """Calls the agent named `agent`; raises AgentError when it cannot answer."""

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult: ...
