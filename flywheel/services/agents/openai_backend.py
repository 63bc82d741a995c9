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
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import httpx

from flywheel.services.agents.base import AgentBackend
from flywheel.services.agents.logprob_confidence import confidence_of
from flywheel.services.models import Price
from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
NO_SIGNAL_CONFIDENCE = 0.5
"""Confidence reported when the server returns no log-probabilities: undecided."""
T = TypeVar("T")


class _Retry(Exception):
    """A 429 or 5xx answer: worth another try (after the server's Retry-After, if it gave one)."""

    def __init__(self, message: str, retry_after: str | None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(slots=True)
class _Reply:
    """What a completion (whole or streamed) comes to: text, why it ended, token log-probs, usage."""

    content: str
    finish: str | None
    tokens: list[dict[str, Any]]
    usage: dict[str, Any]


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
        """The answer; streamed from the server (each piece to `request.on_delta`) when it has one."""
        started = time.perf_counter()
        body = self.body(request)
        if request.on_delta is not None:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
            reply = await self._retrying(lambda: self._stream(body, request.on_delta))
        else:
            reply = self._reply(await self._retrying(lambda: self._post(body)))
        latency = time.perf_counter() - started
        if reply.finish == "length" and request.output_schema is not None:
            raise AgentError(
                f"{self.base_url}: model {self.model!r}: the answer was cut at max_tokens "
                f"({request.max_tokens or self.default_max_tokens}): raise the step's max_tokens "
                "or lower its output fields' max_length"
            )
        answer = self._answer(reply.content, request)
        confidence = confidence_of(reply.tokens, reply.content, request.decisive, request.output_schema)
        tokens_in = int(reply.usage.get("prompt_tokens", 0))
        tokens_out = int(reply.usage.get("completion_tokens", len(reply.tokens)))
        return AgentResult(
            answer=answer,
            confidence=NO_SIGNAL_CONFIDENCE if confidence is None else confidence,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=self.price.cost(tokens_in, tokens_out) if self.price else 0.0,
            latency_s=latency,
            model=self.model,
        )

    def _reply(self, data: dict[str, Any]) -> _Reply:
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise AgentError(f"{self.base_url}: model {self.model!r} sent no choice: {str(data)[:200]}") from None
        tokens = ((choice.get("logprobs") or {}).get("content")) or []
        return _Reply(content, choice.get("finish_reason"), tokens, data.get("usage") or {})

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

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again with backoff while the server is unreachable, times out or says
        429/5xx (_Retry) before answering; other errors end it."""
        last, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, retry_after))
                retry_after = None
            try:
                return await call()
            except httpx.TimeoutException as e:
                last = f"timed out ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"cannot reach the server: {e!r}"
            except _Retry as e:
                last, retry_after = str(e), e.retry_after
        raise AgentError(
            f"OpenAI-compatible server {self.base_url} (model {self.model!r}) failed after "
            f"{self.max_retries + 1} tries: {last}"
        )

    def _check(self, r: httpx.Response) -> None:
        if r.status_code in RETRY_STATUS:
            raise _Retry(f"HTTP {r.status_code}: {r.text[:200]}", r.headers.get("retry-after"))
        if r.status_code >= 400:
            raise AgentError(f"{self.base_url}: model {self.model!r}: HTTP {r.status_code}: {r.text[:300]}")

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        r = await self._client.post("/chat/completions", json=body)
        self._check(r)
        return r.json()

    async def _stream(self, body: dict[str, Any], on_delta: Callable[[str], None]) -> _Reply:
        """A streamed completion (server-sent chunks), each content piece passed on as it comes.
        Once a piece is passed on, a broken stream is an AgentError (never retried)."""
        async with self._client.stream("POST", "/chat/completions", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                self._check(r)
            reply = _Reply("", None, [], {})
            parts: list[str] = []
            try:
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise AgentError(f"{self.base_url}: model {self.model!r}: {str(chunk['error'])[:300]}")
                    reply.usage = chunk.get("usage") or reply.usage
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            parts.append(text)
                            on_delta(text)
                        reply.tokens.extend(((choice.get("logprobs") or {}).get("content")) or [])
                        reply.finish = choice.get("finish_reason") or reply.finish
            except json.JSONDecodeError as e:
                raise AgentError(f"{self.base_url}: model {self.model!r} streamed no JSON chunk: {e}") from None
            except httpx.HTTPError as e:
                if parts:
                    raise AgentError(f"{self.base_url}: model {self.model!r}: the stream broke: {e!r}") from None
                raise
        reply.content = "".join(parts)
        return reply

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
