"""Metrics scraped from a running local service move as runs and outcomes are posted; a run's
W3C trace context reaches the agent call, is stored with the run and is one GET away."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from flywheel.cli.local_server import local_api
from flywheel.services.metrics import reason_kind
from flywheel.services.tracing import parse_traceparent, run_span
from tests.services.local_service import local_settings, role_headers

WF = "ticket_triage"
TICKET = {"text": "my parcel never arrived", "product": "shipping", "customer_tier": "pro", "channel": "chat"}
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(client, {role: headers}) of a local app with its registry and learning loop."""
    root = tmp_path_factory.mktemp("metrics")
    settings = local_settings(root, poll_s=0.05)
    headers = role_headers(settings, ("service", "mlops"), "m")
    with TestClient(local_api(settings, learning=True)) as client:
        yield client, headers


def scrape(client, headers) -> dict[tuple[str, frozenset], float]:
    """Every sample of GET /metrics, parsed by prometheus-client: (name, labels) -> value."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def total(samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_move_when_runs_and_outcomes_are_posted(world):
    client, h = world
    assert client.get("/metrics").status_code == 401  # a token, as every endpoint but health
    before = scrape(client, h["service"])
    runs = [client.post(f"/v1/workflows/{WF}/runs", headers=h["service"],
                        json={"input": {**TICKET, "text": f"parcel {i} lost"}}).json() for i in range(12)]
    ok = [r for r in runs if r["status"] == "completed"]
    failed = [r for r in runs if r["status"] == "failed"]  # the service stores their outcome itself
    events = [{"event_id": f"e-{uuid.uuid4().hex}", "run_id": r["run_id"], "success": True, "quality": 0.9}
              for r in ok]
    assert client.post("/v1/outcomes", headers=h["service"], json={"events": events}).status_code == 200
    client.post("/v1/outcomes", headers=h["service"], json={"events": events[:1] + [
        {"event_id": "e-unknown", "run_id": "no-such-run", "success": True}]})
    deadline = time.time() + 20
    while True:  # the loop's gauges follow within its refresh period
        after = scrape(client, h["service"])
        if ("flywheel_human_share", frozenset({("workflow", WF)})) in after or time.time() > deadline:
            break
        time.sleep(0.2)

    def moved(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("flywheel_runs_started_total", workflow=WF) == 12
    assert moved("flywheel_runs_finished_total", workflow=WF, status="completed") == len(ok)
    by_arm = {r["decision"]["arm"] for r in runs}
    assert sum(moved("flywheel_agent_tokens_total", arm=a, direction="out") for a in by_arm) > 0
    assert moved("flywheel_decision_seconds_count", workflow=WF) == 12
    assert moved("flywheel_outcomes_total", result="accepted") == len(ok) + len(failed)
    assert moved("flywheel_outcomes_total", result="duplicate") == 1
    assert moved("flywheel_outcomes_rejected_total", reason="unknown_run_id") == 1
    assert moved("flywheel_outcome_lag_seconds_count", workflow=WF) == len(ok) + len(failed)
    assert moved("flywheel_reward_sum", workflow=WF) > 0
    assert total(after, "flywheel_gate_threshold", workflow=WF) > 0
    assert 0 <= total(after, "flywheel_human_share", workflow=WF) <= 1
    assert total(after, "flywheel_unattended_error_target", workflow=WF) == pytest.approx(0.05)
    assert total(after, "flywheel_unattended_error_rate", workflow=WF) == 0.0  # every outcome a success
    assert total(after, "flywheel_mlflow_up") == 1.0
    assert ("flywheel_outbox_depth", frozenset()) in after


def test_traceparent_reaches_the_agent_is_stored_and_traced(world):
    client, h = world
    runtime = client.app.state.holder._runtime
    engine = runtime.engines[WF]
    seen = []
    real = engine.agents

    async def recording(agent, request):
        seen.append(dict(request.metadata))
        return await real(agent, request)

    engine.agents = recording
    try:
        run = client.post(f"/v1/workflows/{WF}/runs", headers={**h["service"], "traceparent": PARENT},
                          json={"input": TICKET}).json()
    finally:
        engine.agents = real
    trace_id = PARENT.split("-")[1]
    assert run["trace_id"] == trace_id
    sent = parse_traceparent(seen[0]["traceparent"])
    assert sent is not None and sent.trace_id == trace_id and sent.span_id != PARENT.split("-")[2]

    trace = client.get(f"/v1/runs/{run['run_id']}/trace", headers=h["mlops"])
    assert trace.status_code == 200, trace.text
    t = trace.json()
    assert t["trace_id"] == trace_id
    assert set(t["scores"]) == {"fast", "balanced", "strong", "frontier"} and t["arm"] in t["scores"]
    assert 0 < t["propensity"] <= 1 and t["features"]
    assert t["config_version"].startswith(f"{WF}@")
    if t["gate"] is not None:
        assert t["gate"]["passed"] == (t["gate"]["confidence"] >= t["gate"]["threshold"])
    # The initial config is no registry version: no policy checks to show (versions: see test_dashboard).
    assert (t["policy"] is None) == ("@v" not in t["config_version"])
    assert client.get("/v1/runs/nope/trace", headers=h["mlops"]).status_code == 404
    assert client.get(f"/v1/runs/{run['run_id']}", headers=h["service"]).json()["trace_id"] == trace_id


def test_a_run_without_trace_context_starts_a_trace():
    assert parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
    assert parse_traceparent("garbage") is None
    fresh = run_span(None)
    assert len(fresh.trace_id) == 32 and parse_traceparent(fresh.header) == fresh
    child = run_span(PARENT)
    assert child.trace_id == PARENT.split("-")[1] and child.span_id != PARENT.split("-")[2]


def test_rejection_reasons_become_few_label_values():
    assert reason_kind("unknown run_id 'abc123'") == "unknown_run_id"
    assert reason_kind("quality: 1.5 is outside 0..1") == "quality"


def _learned(runtime):
    """A bandit version of WF that learned 'parcel' tickets need the strong arm (what a champion applies)."""
    from flywheel.learners.state import dumps_policy
    from flywheel.learners.workflow_learner import WorkflowLearner
    from flywheel.registry.learned_config import LearnedConfig, RoutingConfig, state_sha

    spec = runtime.specs[WF]
    learner = WorkflowLearner(spec, seed=0)
    rng = __import__("random").Random(0)
    for i in range(600):
        parcel = i % 2 == 0
        x = {**{k: TICKET[k] for k in spec.features.fields}, "prompt": "my parcel never arrived" if parcel else "hi"}
        arm = rng.choice(spec.arms)
        good = arm == "strong" if parcel else arm == "fast"
        learner.bandit.learn_one(x, arm, float(rng.random() < (0.9 if good else 0.3)), 0.001, 0.1)
    state = dumps_policy(learner.policy())
    config = LearnedConfig(workflow=WF, thresholds=spec.gates, cost_weight=spec.objective.cost_weight,
                           routing=RoutingConfig(kind="bandit", weights={a: 0.0 for a in spec.arms},
                                                 state_sha=state_sha(state)), prompts=spec.prompts)
    return config, state


def test_the_trace_explains_why_the_router_chose(world):
    client, h = world
    runtime = client.app.state.holder._runtime
    before = runtime.configs.learned(WF)
    static = client.post(f"/v1/workflows/{WF}/runs", headers=h["service"], json={"input": TICKET}).json()
    if "@static-" in before.version:  # a static config: no learned router to explain
        assert client.get(f"/v1/runs/{static['run_id']}/trace", headers=h["mlops"]).json()["explanation"] is None
    runtime.configs.apply(*_learned(runtime))
    try:
        run = client.post(f"/v1/workflows/{WF}/runs", headers=h["service"], json={"input": TICKET}).json()
        t = client.get(f"/v1/runs/{run['run_id']}/trace", headers=h["mlops"]).json()
    finally:
        if before.routing.kind == "softmax":  # a learned champion's state comes back with the next sync
            runtime.configs.apply(before)
    ex = t["explanation"]
    assert ex["arm"] == t["arm"] and set(ex["arms"]) == set(t["scores"])
    assert ex["runner_up"] in t["scores"] and ex["runner_up"] != t["arm"]
    assert ex["exact"] and ex["state_version"] == t["config_version"]
    # recomputed from the logged features with the state that decided: the logged scores
    assert all(abs(ex["arms"][a]["score"] - s) < 1e-9 for a, s in t["scores"].items())
    assert any(c["feature"].startswith("prompt:") for c in ex["contributions"])
    from flywheel.cli.explain import render

    assert f"over {ex['runner_up']}: score" in render(run["run_id"], t["config_version"], ex)
