"""What an agent is asked and what it answers, whatever its backend (sim, replay, vllm, openai)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(slots=True)
class AgentRequest:
    workflow: str
    run_id: str
    prompt: str
    input: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    # What a real model is asked (from the step's prompt template); None for sim and replay.
    messages: list[dict[str, str]] | None = None
    output_schema: dict[str, Any] | None = None  # JSON schema of the answer (structured output)
    decisive: str | None = None  # answer field whose tokens' log-probabilities are the confidence
    max_tokens: int | None = None
    # Called with each piece of the answer's text as the model streams it (a streamed chat);
    # backends that cannot stream ignore it. In-process only: dropped before crossing processes.
    on_delta: Callable[[str], None] | None = None


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
