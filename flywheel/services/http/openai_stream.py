"""A routed chat completion in OpenAI's shapes: whole, or streamed as the model answers.

Streamed (`stream: true`), the routing decision is known before the model is called, so
the response starts then, with the decision in its headers, and the chosen model's tokens
go out as they arrive. The run is logged (answer, tokens, cost, confidence, gate) when the
model has finished, like any run. The gate judges the whole answer, which is already sent:
its verdict comes in the last chunk's `flywheel` object (`status` is `waiting` when the
answer went to a human checkpoint) and in the run's record. Backends that cannot stream
(the simulator, agents in their own deployment) send the answer whole, at the end.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from flywheel.ledger.records import RunRecord
from flywheel.services.runtime import Runtime

HEADER_PREFIX = "x-flywheel-"


def decision_headers(run: RunRecord) -> dict[str, str]:
    """The routing decision of a run, as response headers."""
    headers = {f"{HEADER_PREFIX}run-id": run.run_id, f"{HEADER_PREFIX}status": run.status,
               f"{HEADER_PREFIX}version": run.config_version}
    if run.decision is not None:
        headers[f"{HEADER_PREFIX}arm"] = run.decision.arm
        headers[f"{HEADER_PREFIX}propensity"] = repr(run.decision.propensity)
    return headers


def failure(run: RunRecord) -> str:
    """Why a failed run failed (its failed step's error)."""
    errors = [s.output.get("error") for s in run.steps if s.status == "failed"]
    return f"run {run.run_id} failed: {errors[-1] if errors else 'no answer'}"


def _usage(run: RunRecord) -> dict[str, int]:
    agent = next((s.output for s in run.steps if s.kind == "agent" and s.status == "done"), {})
    tokens_in, tokens_out = int(agent.get("tokens_in", 0)), int(agent.get("tokens_out", 0))
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def _content(run: RunRecord) -> str:
    return json.dumps(run.answer, separators=(",", ":")) if run.answer is not None else ""


class Completion:
    """A run as an OpenAI chat completion (whole, or as stream chunks)."""

    def __init__(self, run: RunRecord, model: str):
        self.id = f"chatcmpl-{run.run_id}"
        self.model = model
        self.created = int(run.created_at)

    def body(self, run: RunRecord) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": _content(run)},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(run),
        }

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        body: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model, "choices": choices, **extra}
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    def delta(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return self.chunk([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra)

    def end(self, run: RunRecord, include_usage: bool) -> list[str]:
        """The finish (with the run's outcome in `flywheel`), the usage if asked, [DONE]."""
        gate = next((s.output for s in run.steps if s.kind == "gate"), None)
        chunks = [self.delta({}, "stop", flywheel={"run_id": run.run_id, "status": run.status, "gate": gate})]
        if include_usage:
            chunks.append(self.chunk([], usage=_usage(run)))
        return chunks + ["data: [DONE]\n\n"]


class LiveRun:
    """A run started for a streamed chat: its events (decided, text pieces, the end) in a queue."""

    def __init__(self, rt: Runtime, workflow: str, data: dict[str, Any], metadata: dict[str, str]):
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.sent = False  # whether any piece of the model's text went out
        self.task = asyncio.get_running_loop().create_task(rt.start_run(
            workflow, data, metadata,
            # the headers as decided (the run object goes on changing)
            on_decided=lambda run: self.events.put_nowait(("decided", (run, decision_headers(run)))),
            on_delta=lambda text: self.events.put_nowait(("delta", text)),
        ))
        # the run goes on (and is logged) if the client leaves mid-stream
        self.task.add_done_callback(lambda _: self.events.put_nowait(("end", None)))

    async def next(self) -> tuple[str, Any]:
        return await self.events.get()

    async def stream(self, completion: Completion, first: tuple[str, Any], include_usage: bool) -> AsyncIterator[str]:
        """Server-sent events from the first piece (or the end) on."""
        yield completion.delta({"role": "assistant", "content": ""})
        kind, value = first
        while kind == "delta":
            self.sent = True
            yield completion.delta({"content": value})
            kind, value = await self.next()
        run = self.task.result()
        if run.status == "failed":  # after pieces went out (else the endpoint answered 502)
            error = {"message": failure(run), "type": "server_error", "param": None, "code": "agent_failed"}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        if not self.sent:
            content = _content(run)
            for i in range(0, len(content), 64):
                yield completion.delta({"content": content[i:i + 64]})
        for chunk in completion.end(run, include_usage):
            yield chunk
