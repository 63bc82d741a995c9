"""Governance on Serve over HTTP: roles, pin, held versions, unpin, rollback, history, audit."""

from __future__ import annotations

import time

import httpx
import pytest
from ray import serve

from flywheel.services.app import APP_NAME

WF = "ticket_triage"
TICKET = {"text": "my parcel never arrived", "product": "shipping", "customer_tier": "pro", "channel": "chat"}


@pytest.fixture(scope="module")
def tokens(serve_settings, flywheel_url):
    from flywheel.workflows.ledger import Ledger

    ledger = Ledger(serve_settings.resolved_database_url())
    out = {role: ledger.create_token(role, name=f"gov-{role}", created_by="tests")[1]
           for role in ("mlops", "operator")}
    ledger.dispose()
    return out


def _as(token):
    return {"Authorization": f"Bearer {token}"}


def _propose(client, learner, n=40):
    """Runs with outcomes, then the learner proposes now; returns {version label: status} of the
    versions it registered meanwhile (its background loop may beat publish_now to it)."""
    before = len(learner.status.remote().result()["published"])
    events = []
    for i in range(n):
        run = client.post(f"/v1/workflows/{WF}/runs", json={"input": {**TICKET, "text": f"{TICKET['text']} {i}"}})
        events.append({"event_id": f"gov-{run.json()['run_id']}", "run_id": run.json()["run_id"],
                       "success": i % 3 != 0, "quality": 0.9 if i % 3 else 0.1})
    assert client.post("/v1/outcomes", json={"events": events}).status_code == 200
    deadline = time.time() + 20
    while time.time() < deadline:
        learner.publish_now.remote().result()
        fresh = learner.status.remote().result()["published"][before:]
        mine = {v: status for v, _, status in fresh if v.startswith(f"{WF}@")}
        if mine:
            return mine
        time.sleep(0.2)
    raise AssertionError("the learner proposed no version")


def _in_order(events, wanted):
    """Whether `wanted` occurs in `events` in this order (others may come between)."""
    it = iter(events)
    return all(any(e == w for e in it) for w in wanted)


def _live_in_runs(client, version, within_s=2.0):
    deadline = time.time() + within_s
    while time.time() < deadline:
        run = client.post(f"/v1/workflows/{WF}/runs", json={"input": TICKET}).json()
        if run["decision"]["config_version"] == version:
            return run
        time.sleep(0.02)
    raise AssertionError(f"{version} not live in runs within {within_s}s")


def test_pin_holds_unpin_releases_rollback_restores(client, flywheel_url, tokens):
    learner = serve.get_deployment_handle("learner", app_name=APP_NAME)
    op, mlops = _as(tokens["operator"]), _as(tokens["mlops"])
    first = _propose(client, learner)
    v_a = max(first, key=lambda v: int(v.split("@v")[1]))
    assert first[v_a] == "auto"
    _propose(client, learner)
    n_a = int(v_a.split("@v")[1])

    # roles: no token 401, the service token 403, the operator 200
    with httpx.Client(base_url=flywheel_url, timeout=30) as anon:
        assert anon.post(f"/v1/workflows/{WF}/pin", json={"version": n_a, "reason": "x"}).status_code == 401
    assert client.post(f"/v1/workflows/{WF}/pin", json={"version": n_a, "reason": "x"}).status_code == 403
    r = client.post(f"/v1/workflows/{WF}/pin", headers=op, json={"version": n_a, "reason": "incident 7"})
    assert r.status_code == 200, r.text
    pinned_run = _live_in_runs(client, v_a)

    held = _propose(client, learner)
    assert set(held.values()) == {"held"}
    time.sleep(0.5)
    assert client.post(f"/v1/workflows/{WF}/runs", json={"input": TICKET}).json()["decision"]["config_version"] == v_a
    r = client.post(f"/v1/workflows/{WF}/rollback", headers=op, json={"reason": "no"})
    assert r.status_code == 409 and "pinned" in r.text

    r = client.post(f"/v1/workflows/{WF}/unpin", headers=op, json={"reason": "incident over"})
    assert r.status_code == 200, r.text
    released = r.json()["live_version"]
    # the newest version held while pinned (the learner may have held more after those seen)
    assert int(released.split("@v")[1]) >= max(int(v.split("@v")[1]) for v in held)
    _live_in_runs(client, released)

    r = client.post(f"/v1/workflows/{WF}/rollback", headers=op, json={"to": n_a, "reason": "back to the pinned one"})
    assert r.status_code == 200 and r.json()["live_version"] == v_a
    again = _live_in_runs(client, v_a)
    # the same version decides the same input with the same scores as before
    assert again["decision"]["scores"] == pinned_run["decision"]["scores"]

    h = client.get(f"/v1/workflows/{WF}/history", headers=mlops)
    assert h.status_code == 200
    actions = [e["action"] for e in h.json()["events"]]
    assert _in_order(actions, ["pin", "hold", "unpin", "auto-promote", "rollback"]), actions
    assert [e["actor"] for e in h.json()["events"] if e["action"] == "pin"][-1] == "gov-operator"
    statuses = {v["label"]: v["status"] for v in h.json()["versions"]}
    assert statuses[released] == "auto" and statuses[v_a] == "auto"
    assert client.get("/v1/audit/verify").status_code == 403  # the service token may not
    v = client.get("/v1/audit/verify", headers=op).json()
    assert v["intact"] and v["entries"] >= len(actions)
