"""An OpenAI-compatible face on the ingress: `POST /v1/chat/completions` and `GET /v1/models`.

Any OpenAI client can call a workflow: `model="flywheel:<workflow>"` (or `auto`, the
default workflow) makes the request one run of that workflow. The last user message
is the workflow's prompt field; its other declared inputs come in the request's
`flywheel.input` object (`extra_body={"flywheel": {"input": {...}}}` in the official
client). The learned router picks the arm and the run is logged like any other, so
outcomes can be posted for it by the run id; the decision comes back in headers:

- ``x-flywheel-run-id``, ``x-flywheel-arm``, ``x-flywheel-propensity``,
  ``x-flywheel-version`` (the learned config that decided) and ``x-flywheel-status``
  (completed, or waiting when the answer waits at a human checkpoint; running on a
  streamed chat, whose headers go out before the model answers).

The completion's content is the run's answer as JSON. With ``stream: true`` the chosen
model's tokens come as server-sent chunks as it generates them (openai_stream.py), the
headers as soon as the router has decided; the gate's verdict comes in the last chunk.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.ledger.records import RunRecord
from flywheel.services.http.auth import require
from flywheel.services.http.errors import AUTHED, responses
from flywheel.services.http.openai_stream import Completion, LiveRun, decision_headers, failure
from flywheel.services.runtime import InvalidInput, Runtime, UnknownWorkflow

MODEL_PREFIX = "flywheel:"
AUTO = "auto"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentPart(_In):
    type: Literal["text"] = Field(description="Only text parts are understood.")
    text: str = Field(description="The part's text.")


class ChatMessage(_In):
    role: Literal["system", "developer", "user", "assistant", "tool"] = Field(description="Who speaks.")
    content: str | list[ContentPart] | None = Field(default=None, description="The message's text.")
    name: str | None = Field(default=None, description="Optional name of the speaker.")

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_In):
    include_usage: bool = Field(default=False, description="Send a last chunk with the token usage.")


class OpenAIErrorDetail(BaseModel):
    message: str = Field(description="What went wrong.")
    type: str = Field(description="OpenAI's error type.")
    param: str | None = Field(default=None, description="The request parameter concerned.")
    code: str = Field(description="A short machine-readable code.")


class OpenAIErrorOut(BaseModel):
    """An error in OpenAI's shape (what OpenAI clients show): an unknown model, a failed agent."""

    error: OpenAIErrorDetail = Field(description="The error.")


_OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": OpenAIErrorOut, "description": "No workflow for this model."},
    502: {"model": OpenAIErrorOut, "description": "The agent the router chose failed (the run is logged)."},
    422: {"description": "A malformed request (Flywheel's error model), or a workflow input missing or out of "
                         "bounds (OpenAI's shape, which OpenAI clients show).",
          "content": {"application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/ErrorOut"},
                                                                {"$ref": "#/components/schemas/OpenAIErrorOut"}]}}}},
}


class FlywheelExtension(_In):
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="The workflow's other declared inputs (the last user message fills its prompt field).",
    )


class ChatCompletionRequest(_In):
    """The OpenAI chat completion request, as far as a routed workflow uses it."""

    model: str = Field(description="`flywheel:<workflow>`, or `auto` for the default workflow.")
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation; the last user message is the prompt.")
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = Field(default=None, description="Streaming options.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Tags stored with the run.")
    user: str | None = Field(default=None, description="End-user id, stored in the run's metadata.")
    max_tokens: int | None = Field(default=None, ge=1, description="Accepted; the workflow's step bounds its answer.")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Same as max_tokens.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Accepted; arms fix their own.")
    top_p: float | None = Field(default=None, ge=0, le=1, description="Accepted; arms fix their own.")
    n: int = Field(default=1, ge=1, le=1, description="One choice only.")
    seed: int | None = Field(default=None, description="Accepted; routing draws are seeded per run.")
    flywheel: FlywheelExtension = Field(default_factory=FlywheelExtension, description="Flywheel's own fields.")


def openai_router(default_workflow: str | None = None) -> APIRouter:
    """The OpenAI-compatible endpoints over the app's runtime (service tokens are the API keys).

    `auto` runs `default_workflow`, or the first workflow by name when none is given.
    """
    router = APIRouter(tags=["openai"])

    async def runtime(request: Request) -> Runtime:
        return await request.app.state.holder.get()

    @router.get("/v1/models", dependencies=[Depends(require())], responses=responses(*AUTHED))
    async def list_models(rt: Runtime = Depends(runtime)):
        """Each workflow as a model `flywheel:<workflow>`, and `auto`."""
        now = int(time.time())
        ids = [MODEL_PREFIX + name for name in sorted(rt.specs)] + [AUTO]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": now, "owned_by": "flywheel"} for i in ids]}

    @router.post("/v1/chat/completions", dependencies=[Depends(require("service"))],
                 responses={**responses(*AUTHED, 413), **_OPENAI_ERRORS})
    async def chat_completions(body: ChatCompletionRequest, rt: Runtime = Depends(runtime)):
        """Run a workflow on the conversation's last user message; the answer is the completion."""
        try:
            workflow = _workflow_of(body.model, rt, default_workflow)
            spec = rt.spec(workflow)
        except UnknownWorkflow as e:
            return _error(404, str(e), "model", "model_not_found")
        data = {spec.prompt_field: _prompt_of(body.messages), **body.flywheel.input}
        metadata = dict(body.metadata)
        if body.user:
            metadata.setdefault("user", body.user)
        model = MODEL_PREFIX + workflow
        if body.stream:
            return await _streamed(rt, workflow, data, metadata, model, body)
        try:
            run = await rt.start_run(workflow, data, metadata)
        except InvalidInput as e:
            return _invalid(body, e)
        if run.status == "failed":
            return _failed(run)
        return JSONResponse(content=Completion(run, model).body(run), headers=decision_headers(run))

    return router


async def _streamed(rt: Runtime, workflow: str, data: dict[str, Any], metadata: dict[str, str], model: str,
                    body: ChatCompletionRequest):
    """A streamed chat: the response starts once the run is decided and its first piece (or its
    end) is there, with the decision in its headers; the model's text follows as it comes."""
    live = LiveRun(rt, workflow, data, metadata)
    event = await live.next()
    run, headers = event[1] if event[0] == "decided" else (None, {})
    if run is not None:
        event = await live.next()
    if event[0] == "end":
        error = live.task.exception()
        if isinstance(error, InvalidInput):
            return _invalid(body, error)
        if error is not None:
            raise error
        run = live.task.result()
        if run.status == "failed":
            return _failed(run)
        headers = headers or decision_headers(run)
    assert run is not None
    usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(live.stream(Completion(run, model), event, usage), media_type="text/event-stream",
                             headers=headers)


def _invalid(body: ChatCompletionRequest, e: InvalidInput) -> JSONResponse:
    return _error(422, f"{body.model}: input: {e}", "flywheel.input", "invalid_input")


def _failed(run: RunRecord) -> JSONResponse:
    failed = _error(502, failure(run), None, "agent_failed")
    failed.headers.update(decision_headers(run))
    return failed


def _error(status: int, message: str, param: str | None, code: str) -> JSONResponse:
    """An error in OpenAI's shape, which OpenAI clients show."""
    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
    )


def _workflow_of(model: str, rt: Runtime, default: str | None) -> str:
    if model == AUTO:
        if default is not None:
            return default
        if not rt.specs:
            raise UnknownWorkflow("no workflows to run for model 'auto'")
        return sorted(rt.specs)[0]
    if not model.startswith(MODEL_PREFIX):
        raise UnknownWorkflow(f"unknown model {model!r}: use 'flywheel:<workflow>' or 'auto'")
    return model[len(MODEL_PREFIX):]


def _prompt_of(messages: list[ChatMessage]) -> str:
    users = [m for m in messages if m.role == "user"]
    return (users[-1] if users else messages[-1]).text()
