"""HTTP API scenarios, run against any client: in-process (tests/services) and on Ray Serve (tests/integration).

The client sends a service token by default (`Authorization: Bearer ...` in its headers).
"""

from __future__ import annotations

import uuid

TICKET = {"text": "My invoice shows a double charge for March", "product": "billing",
          "customer_tier": "pro", "channel": "email"}


def start(client, workflow="ticket_triage", data=None, metadata=None):
    r = client.post(f"/v1/workflows/{workflow}/runs", json={"input": data or TICKET, "metadata": metadata or {}})
    assert r.status_code == 200, r.text
    return r.json()


def waiting_run(client, tries=300):
    """Start runs on varied tickets until one waits at the human checkpoint."""
    for i in range(tries):
        run = start(client, data={**TICKET, "text": f"{TICKET['text']} (ticket {i})"})
        if run["status"] == "waiting":
            return run
    raise AssertionError("no run waited for a human in %d tries" % tries)


def run_then_outcome_shows_on_run(client):
    run = start(client, metadata={"trace": "abc"})
    d = run["decision"]
    # frontier is not available in the stationary scenario: a run routed there fails, visibly.
    assert run["status"] in {"completed", "waiting"} or (run["status"] == "failed" and d["arm"] == "frontier")
    assert d["arm"] in {"fast", "balanced", "strong", "frontier"}
    assert 0 < d["propensity"] <= 1
    assert set(d["scores"]) == {"fast", "balanced", "strong", "frontier"}
    assert d["config_version"].startswith("ticket_triage@")
    event_id = f"ev-{uuid.uuid4().hex}"
    r = client.post("/v1/outcomes", json={"events": [
        {"event_id": event_id, "run_id": run["run_id"], "success": True, "quality": 0.9}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"new": 1, "duplicate": 0, "rejected": []}
    detail = client.get(f"/v1/runs/{run['run_id']}").json()
    assert detail["metadata"] == {"trace": "abc"}
    assert [s["kind"] for s in detail["steps"]][:2] == ["route", "agent"]
    assert [o["event_id"] for o in detail["outcomes"]] == [event_id]
    assert detail["outcomes"][0]["quality"] == 0.9
    assert detail["decision"] == d
    return run


def checkpoint_resumed_twice_acts_once(client):
    run = waiting_run(client)
    first = client.post(f"/v1/runs/{run['run_id']}/resume",
                        json={"decision": "edit", "reviewer": "ana", "answer": {"label": "refund"}})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"
    assert first.json()["answer"] == {"label": "refund"}
    second = client.post(f"/v1/runs/{run['run_id']}/resume", json={"decision": "approve", "reviewer": "bo"})
    assert second.status_code == 409
    assert "not waiting" in second.text
    detail = client.get(f"/v1/runs/{run['run_id']}").json()
    human_steps = [s for s in detail["steps"] if s["kind"] == "human" and s["status"] == "done"]
    # The reviewer is the caller's token (api-tests, integration-tests), never the body's "ana".
    reviewer = human_steps[0]["output"]["reviewer"] if len(human_steps) == 1 else None
    assert reviewer is not None and reviewer != "ana" and reviewer.endswith("tests"), human_steps
    assert detail["answer"] == {"label": "refund"}
    human_outcomes = [o for o in detail["outcomes"] if o["source"].startswith("human:")]
    assert len(human_outcomes) == 1 and human_outcomes[0]["human_override"] is True
    assert human_outcomes[0]["event_id"] == f"human:{run['run_id']}"
    assert human_outcomes[0]["source"] == f"human:{reviewer}"


def duplicates_and_rejections_counted(client):
    run = start(client)
    ev = lambda i, **kw: {"event_id": f"dup-{run['run_id']}-{i}", "run_id": run["run_id"], "success": True, **kw}
    batch = [ev(1), ev(2), ev(1), {"event_id": "x-unknown", "run_id": "no-such-run", "success": False},
             ev(3, success=None)]
    r = client.post("/v1/outcomes", json={"events": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["new"] == 2 and body["duplicate"] == 1
    reasons = {x["event_id"]: x["reason"] for x in body["rejected"]}
    assert "unknown run_id" in reasons["x-unknown"]
    assert "success or quality" in reasons[f"dup-{run['run_id']}-3"]
    again = client.post("/v1/outcomes", json={"events": [ev(1), ev(2)]}).json()
    assert again == {"new": 0, "duplicate": 2, "rejected": []}
    outcomes = client.get(f"/v1/runs/{run['run_id']}").json()["outcomes"]
    assert len(outcomes) == 2


def bad_requests_are_clear(client):
    r = client.post("/v1/workflows/no_such_flow/runs", json={"input": TICKET})
    assert r.status_code == 404 and "no_such_flow" in r.text
    r = client.post("/v1/workflows/ticket_triage/runs", json={"input": {**TICKET, "product": "toys"}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "input", "product"]
    r = client.post("/v1/workflows/ticket_triage/runs", json={"inputs": TICKET})
    assert r.status_code == 422 and "inputs" in r.text
    r = client.post("/v1/outcomes", json={"events": [{"run_id": "x", "success": True}]})
    assert r.status_code == 422 and "event_id" in r.text
    r = client.get("/v1/runs/nope")
    assert r.status_code == 404
    r = client.post("/v1/runs/nope/resume", json={"decision": "approve", "reviewer": "x"})
    assert r.status_code == 404
    r = client.post("/v1/runs/nope/resume", json={"decision": "edit", "reviewer": "x"})
    assert r.status_code == 422 and "answer" in r.text


def listing_health_and_stats(client):
    names = {w["name"] for w in client.get("/v1/workflows").json()}
    assert names == {"ticket_triage", "report_generation"}
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and set(health["config_versions"]) == names
    for i in range(5):
        start(client, data={**TICKET, "text": f"stats ticket {i}"})
    stats = client.get("/v1/workflows/ticket_triage/stats").json()
    assert stats["runs"] >= 5
    assert abs(sum(stats["route_shares"].values()) - 1.0) < 1e-9
    spec = client.get("/openapi.json").json()
    assert "/v1/workflows/{workflow}/runs" in spec["paths"] and "/v1/outcomes" in spec["paths"]


def requests_without_a_valid_token_are_refused(client):
    request = client.build_request("POST", "/v1/workflows/ticket_triage/runs", json={"input": TICKET})
    del request.headers["authorization"]
    r = client.send(request)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"][0]["loc"] == ["header", "authorization"]
    r = client.get("/v1/workflows", headers={"Authorization": "Bearer fw_not-a-token"})
    assert r.status_code == 401 and "unknown or revoked" in r.text
    r = client.get("/v1/tokens")  # a service token is no admin
    assert r.status_code == 403 and "role 'service'" in r.text
    request = client.build_request("GET", "/v1/health")
    del request.headers["authorization"]
    assert client.send(request).status_code == 200  # load balancers need no token
