"""The OpenAI-compatible endpoint, called by the official `openai` client over real HTTP (uvicorn, sim agents)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from flywheel.cli.local_server import local_api
from flywheel.ledger import Ledger
from flywheel.services.settings import load_settings

openai = pytest.importorskip("openai", reason="the `openai` client is in the dev extra")

TICKET = {"product": "billing", "customer_tier": "pro", "channel": "email"}
ARMS = {"fast", "balanced", "strong", "frontier"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("openai") / "ledger.db"
    settings = load_settings("configs/app.yaml")
    settings = settings.model_copy(update={"database_url": f"sqlite:///{db}",
                                           "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0})})
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    _, token = ledger.create_token("service", name="openai-tests", created_by="tests")
    ledger.dispose()
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(local_api(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(server):
    url, token = server
    with openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0) as c:
        yield c


def _completed(client, text="I was charged twice for March", tries=40):
    """A raw completion whose run did not fail (the sim's `frontier` is unavailable: those runs fail)."""
    for i in range(tries):
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="flywheel:ticket_triage",
                messages=[{"role": "user", "content": f"{text} (#{i})"}],
                extra_body={"flywheel": {"input": TICKET}},
                metadata={"trace": "t1"},
            )
        except openai.APIStatusError as e:
            assert e.status_code == 502 and e.response.headers["x-flywheel-arm"] == "frontier"
            continue
        return raw
    raise AssertionError("every run failed")


def test_models_list_every_workflow_and_auto(client):
    ids = {m.id for m in client.models.list()}
    assert ids == {"flywheel:ticket_triage", "flywheel:report_generation", "auto"}


def test_completion_is_a_logged_run_with_its_decision_in_headers(client, server):
    url, token = server
    raw = _completed(client)
    completion = raw.parse()
    h = raw.headers
    assert h["x-flywheel-arm"] in ARMS
    assert 0 < float(h["x-flywheel-propensity"]) <= 1
    assert h["x-flywheel-version"].startswith("ticket_triage@")
    assert h["x-flywheel-status"] in {"completed", "waiting"}
    assert completion.model == "flywheel:ticket_triage"
    assert completion.choices[0].finish_reason == "stop"
    answer = json.loads(completion.choices[0].message.content)
    assert isinstance(answer, dict) and answer
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # the run is in the ledger like any other, and takes an outcome by its id
    auth = {"Authorization": f"Bearer {token}"}
    run_id = h["x-flywheel-run-id"]
    detail = httpx.get(f"{url}/v1/runs/{run_id}", headers=auth).json()
    assert detail["decision"]["arm"] == h["x-flywheel-arm"]
    assert detail["decision"]["propensity"] == float(h["x-flywheel-propensity"])
    assert detail["metadata"] == {"trace": "t1"}
    assert detail["input"]["text"].startswith("I was charged twice")
    assert detail["answer"] == answer
    r = httpx.post(f"{url}/v1/outcomes", headers=auth, json={"events": [
        {"event_id": f"oa-{run_id}", "run_id": run_id, "success": True}]})
    assert r.json() == {"new": 1, "duplicate": 0, "rejected": []}


def test_streaming_gives_the_same_kind_of_answer_and_usage(client):
    for i in range(40):
        try:
            with client.chat.completions.with_streaming_response.create(
                model="flywheel:ticket_triage",
                messages=[{"role": "system", "content": "ignored"},
                          {"role": "user", "content": f"Where is my parcel? (#{i})"}],
                extra_body={"flywheel": {"input": {**TICKET, "product": "shipping"}}},
                stream=True,
                stream_options={"include_usage": True},
            ) as raw:
                headers = raw.headers
                chunks = list(raw.parse())
        except openai.APIStatusError as e:
            assert e.status_code == 502
            continue
        break
    else:
        raise AssertionError("every streamed run failed")
    assert headers["x-flywheel-arm"] in ARMS
    assert headers["x-flywheel-version"].startswith("ticket_triage@")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(json.loads(text), dict)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    # the headers come before the run ends; the run's outcome (gate included) with the finish
    assert headers["x-flywheel-status"] == "running"
    final = [c for c in chunks if c.choices][-1].model_extra["flywheel"]
    assert final["run_id"] == headers["x-flywheel-run-id"] and final["status"] in {"completed", "waiting"}
    assert final["gate"]["passed"] == (final["status"] == "completed")


def test_auto_runs_the_default_workflow(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto",  # the first workflow by name: report_generation
        messages=[{"role": "user", "content": "Quarterly churn"}],
        extra_body={"flywheel": {"input": {"report_type": "summary", "audience": "internal", "length_words": 80}}},
    )
    assert raw.headers["x-flywheel-version"].startswith("report_generation@")
    assert "report" in json.loads(raw.parse().choices[0].message.content)


def test_bad_requests_are_clear(client):
    with pytest.raises(openai.NotFoundError, match="no_such"):
        client.chat.completions.create(model="flywheel:no_such", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="gpt-4o"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.UnprocessableEntityError, match="product: field required"):  # a declared input is missing
        client.chat.completions.create(model="flywheel:ticket_triage", messages=[{"role": "user", "content": "x"}])


def test_a_wrong_key_is_refused(server):
    url, _ = server
    with openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
