"""The openai agent backend against a scripted OpenAI-compatible server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import math
import socket

import httpx
import pytest

from flywheel.services.agents.openai_backend import OpenAIBackend
from flywheel.services.models import Price
from flywheel.workflows.agent_io import AgentError, AgentRequest
from flywheel.workflows.loading import load_model
from flywheel.workflows.spec import WorkflowSpec

TEMPLATE = load_model("configs/workflows/ticket_triage.yaml", WorkflowSpec).prompts["classify"]
INPUT = {"text": "I was charged twice", "product": "billing", "customer_tier": "pro", "channel": "email"}


def _request() -> AgentRequest:
    return AgentRequest(
        workflow="ticket_triage", run_id="r1", prompt=INPUT["text"], input=INPUT,
        messages=TEMPLATE.messages(INPUT), output_schema=TEMPLATE.schema,
        decisive=TEMPLATE.decisive, max_tokens=TEMPLATE.max_tokens,
    )


def _completion(content: str, tokens: list[tuple[str, float]], usage=(40, 6)) -> dict:
    return {
        "id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content},
                     "logprobs": {"content": [{"token": t, "logprob": lp} for t, lp in tokens]}}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


ANSWER = _completion('{"label": "refund"}', [('{"', -0.01), ("label", -0.01), ('":', -0.01), (' "', -0.01),
                                              ("ref", -0.2), ("und", -0.05), ('"}', -0.3)])


def _backend(handler, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_s", 0.001)
    return OpenAIBackend("http://models.test/v1", "m", transport=httpx.MockTransport(handler), **kw)


def test_structured_answer_with_logprob_confidence_and_cost():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=ANSWER)

    backend = _backend(handler, price=Price(input_per_mtok=1.0, output_per_mtok=2.0), temperature=0.3)
    result = asyncio.run(backend.run(_request()))
    assert result.answer == {"label": "refund"}
    assert math.isclose(result.confidence, math.exp(-0.25))  # the value's tokens only: "ref", "und"
    assert (result.tokens_in, result.tokens_out) == (40, 6)
    assert math.isclose(result.cost, (40 * 1.0 + 6 * 2.0) / 1e6)
    body = seen[0]
    assert body["model"] == "m" and body["logprobs"] is True and body["temperature"] == 0.3
    assert body["max_tokens"] == TEMPLATE.max_tokens
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"][0] == "refund"
    assert body["messages"][-1] == {"role": "user", "content": "Product area: billing. Ticket: I was charged twice"}


def test_retries_429_and_5xx_with_backoff_then_answers():
    statuses = iter([429, 503, 200])
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        calls.append(status)
        return httpx.Response(status, json=ANSWER if status == 200 else {"error": "busy"})

    result = asyncio.run(_backend(handler, max_retries=3).run(_request()))
    assert calls == [429, 503, 200]
    assert result.answer == {"label": "refund"}


def test_gives_up_after_the_retries_naming_the_server():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, text="engine died")

    with pytest.raises(AgentError, match=r"http://models.test/v1.*3 tries.*HTTP 500: engine died"):
        asyncio.run(_backend(handler, max_retries=2).run(_request()))
    assert len(calls) == 3


def test_a_client_error_is_not_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, text="bad schema")

    with pytest.raises(AgentError, match="HTTP 400: bad schema"):
        asyncio.run(_backend(handler).run(_request()))
    assert len(calls) == 1


def test_a_server_that_is_down_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.001, timeout_s=2)
    with pytest.raises(AgentError, match=rf"server http://127.0.0.1:{port}/v1 .*cannot reach the server"):
        asyncio.run(backend.run(_request()))


def test_an_answer_that_is_not_json_is_an_agent_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_completion("Sure! The queue is refund.", [("Sure", -1.0)]))

    with pytest.raises(AgentError, match="answered no JSON"):
        asyncio.run(_backend(handler).run(_request()))


def test_an_answer_cut_at_max_tokens_says_so():
    def handler(request: httpx.Request) -> httpx.Response:
        body = _completion('{"label": "ref', [("x", -0.1)])
        body["choices"][0]["finish_reason"] = "length"
        return httpx.Response(200, json=body)

    with pytest.raises(AgentError, match=r"cut at max_tokens \(16\)"):
        asyncio.run(_backend(handler).run(_request()))


def test_no_logprobs_means_an_undecided_confidence():
    def handler(request: httpx.Request) -> httpx.Response:
        body = _completion('{"label": "bug"}', [])
        body["choices"][0]["logprobs"] = None
        return httpx.Response(200, json=body)

    result = asyncio.run(_backend(handler).run(_request()))
    assert result.answer == {"label": "bug"} and result.confidence == 0.5 and result.cost == 0.0


def _sse(pieces: list[tuple[str, float]], usage=(40, 6), finish="stop") -> bytes:
    """A streamed completion as vLLM sends it: one chunk per token with its log-probability."""
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None,
                             "logprobs": {"content": [{"token": t, "logprob": lp}]}}]} for t, lp in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


PIECES = [('{"', -0.01), ("label", -0.01), ('":', -0.01), (' "', -0.01), ("ref", -0.2), ("und", -0.05), ('"}', -0.3)]


def _streamed_request(deltas: list[str]) -> AgentRequest:
    request = _request()
    request.on_delta = deltas.append
    return request


def test_a_streamed_answer_passes_each_piece_on_and_keeps_confidence_and_usage():
    seen, deltas = [], []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=_sse(PIECES), headers={"content-type": "text/event-stream"})

    result = asyncio.run(_backend(handler, price=Price(input_per_mtok=1.0, output_per_mtok=2.0))
                         .run(_streamed_request(deltas)))
    assert deltas == [t for t, _ in PIECES]
    assert seen[0]["stream"] is True and seen[0]["stream_options"] == {"include_usage": True}
    assert result.answer == {"label": "refund"}
    assert math.isclose(result.confidence, math.exp(-0.25))
    assert (result.tokens_in, result.tokens_out) == (40, 6)
    assert math.isclose(result.cost, (40 * 1.0 + 6 * 2.0) / 1e6)


def test_a_stream_is_retried_only_before_it_starts():
    statuses = iter([503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, content=_sse(PIECES) if status == 200 else b"busy")

    deltas: list[str] = []
    assert asyncio.run(_backend(handler).run(_streamed_request(deltas))).answer == {"label": "refund"}
    assert "".join(deltas) == '{"label": "refund"}'  # once, not twice


def test_a_streamed_answer_cut_at_max_tokens_or_an_error_chunk_is_an_agent_error():
    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_sse(PIECES[:5], finish="length"))

    with pytest.raises(AgentError, match="cut at max_tokens"):
        asyncio.run(_backend(cut).run(_streamed_request([])))

    def error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'data: {"error": {"message": "engine died"}}\n\n')

    with pytest.raises(AgentError, match="engine died"):
        asyncio.run(_backend(error).run(_streamed_request([])))
