"""The openai backend: any OpenAI-compatible chat server answers (vLLM, Ray Serve LLM, a hosted model).

Structured output when the step has a schema (`response_format: json_schema`, which
vLLM turns into guided decoding), the confidence from the log-probabilities of the
answer's decisive tokens, cost from the usage the server reports and the model's price.
Retries with exponential backoff on 429, 5xx and connection failures; an error that
names the server when it cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from flywheel.services.agents.base import AgentBackend
from flywheel.services.agents.logprob_confidence import confidence_of
from flywheel.services.models import Price
from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
NO_SIGNAL_CONFIDENCE = 0.5
"""Confidence reported when the server returns no log-probabilities: undecided."""


class OpenAIBackend(AgentBackend):
    """Calls `POST {base_url}/chat/completions` for `model`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        price: Price | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        temperature: float = 0.0,
        default_max_tokens: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.price = price
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.temperature = temperature
        self.default_max_tokens = default_max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            transport=transport,
        )

    def body(self, request: AgentRequest) -> dict[str, Any]:
        """The chat completion request for an agent request."""
        messages = request.messages or [{"role": "user", "content": request.prompt}]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            "temperature": self.temperature,
            "logprobs": True,
        }
        if request.output_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.output_schema, "strict": True},
            }
        return body

    async def run(self, request: AgentRequest) -> AgentResult:
        started = time.perf_counter()
        data = await self._post(self.body(request))
        latency = time.perf_counter() - started
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise AgentError(f"{self.base_url}: model {self.model!r} sent no choice: {str(data)[:200]}") from None
        if choice.get("finish_reason") == "length" and request.output_schema is not None:
            raise AgentError(
                f"{self.base_url}: model {self.model!r}: the answer was cut at max_tokens "
                f"({request.max_tokens or self.default_max_tokens}): raise the step's max_tokens "
                "or lower its output fields' max_length"
            )
        answer = self._answer(content, request)
        tokens = ((choice.get("logprobs") or {}).get("content")) or []
        confidence = confidence_of(tokens, content, request.decisive, request.output_schema)
        usage = data.get("usage") or {}
        tokens_in = int(usage.get("prompt_tokens", 0))
        tokens_out = int(usage.get("completion_tokens", len(tokens)))
        return AgentResult(
            answer=answer,
            confidence=NO_SIGNAL_CONFIDENCE if confidence is None else confidence,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=self.price.cost(tokens_in, tokens_out) if self.price else 0.0,
            latency_s=latency,
            model=self.model,
        )

    def _answer(self, content: str, request: AgentRequest) -> dict[str, Any]:
        if request.output_schema is None:
            return {"text": content}
        try:
            answer = json.loads(content)
        except json.JSONDecodeError:
            raise AgentError(f"{self.base_url}: model {self.model!r} answered no JSON: {content[:200]!r}") from None
        if not isinstance(answer, dict):
            raise AgentError(f"{self.base_url}: model {self.model!r} answered {type(answer).__name__}, not an object")
        return answer

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        last, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, retry_after))
                retry_after = None
            try:
                r = await self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException as e:
                last = f"timed out ({type(e).__name__})"
                continue
            except httpx.TransportError as e:
                last = f"cannot reach the server: {e!r}"
                continue
            if r.status_code in RETRY_STATUS:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                retry_after = r.headers.get("retry-after")
                continue
            if r.status_code >= 400:
                raise AgentError(f"{self.base_url}: model {self.model!r}: HTTP {r.status_code}: {r.text[:300]}")
            return r.json()
        raise AgentError(
            f"OpenAI-compatible server {self.base_url} (model {self.model!r}) failed after "
            f"{self.max_retries + 1} tries: {last}"
        )

    def _delay(self, attempt: int, hint: str | None) -> float:
        """Exponential backoff, or the server's Retry-After (seconds, at most 30) when longer."""
        delay = self.backoff_s * 2 ** (attempt - 1)
        if hint:
            try:
                delay = max(delay, min(float(hint), 30.0))
            except ValueError:
                pass
        return delay

    async def close(self) -> None:
        await self._client.aclose()
