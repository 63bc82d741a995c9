"""Governance on Serve over HTTP: roles, pin, held versions, unpin, rollback, history, audit."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from ray import serve

from flywheel.services.app import APP_NAME

WF = "ticket_triage"
TICKET = {"text": "my parcel never arrived", "product": "shipping", "customer_tier": "pro", "channel": "chat"}


@pytest.fixture(scope="module")
def tokens(serve_settings, flywheel_url):
    from flywheel.ledger import Ledger

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


def _statuses(client, headers):
    return {v["label"]: v["status"] for v in client.get(f"/v1/workflows/{WF}/history", headers=headers).json()["versions"]}


def _propose_within_policy(serve_settings, learner, base: int) -> str:
    """A tuner's version: version `base` with its threshold 0.02 higher (auto by policy); its label."""
    from flywheel.registry.mlflow_registry import MlflowRegistry
    from flywheel.ledger import Ledger

    reg = MlflowRegistry(serve_settings.learning.mlflow_tracking_uri, serve_settings.learning.mlflow_artifacts)
    old = reg.version(WF, base, learner=False)
    config = old.config.model_copy(update={"version": "", "thresholds": {
        k: round(v + 0.02, 6) for k, v in old.config.thresholds.items()}})
    ledger = Ledger(serve_settings.resolved_database_url())
    ledger.enqueue_version(workflow=WF, proposed_by="tuner", position=0, config=config.model_dump(), evidence={},
                           learner_state=None, policy_state=old.policy_state)
    ledger.dispose()
    deadline = time.time() + 15
    while time.time() < deadline:
        learner.publish_now.remote().result()
        tuned = [v.number for v in reg.versions(WF) if v.tags.get("proposed_by") == "tuner"]
        if tuned:
            return f"{WF}@v{tuned[-1]}"
        time.sleep(0.2)
    raise AssertionError("the tuner's version was not registered")


def test_pin_holds_unpin_releases_rollback_restores(client, flywheel_url, tokens, serve_settings):
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

    # learners keep learning and proposing; nothing goes live while pinned
    during = _propose(client, learner)
    assert set(during.values()) <= {"held", "pending"}, during
    held_label = _propose_within_policy(serve_settings, learner, n_a)
    time.sleep(0.5)
    assert client.post(f"/v1/workflows/{WF}/runs", json={"input": TICKET}).json()["decision"]["config_version"] == v_a
    held = {label for label, status in _statuses(client, mlops).items() if status == "held"}
    assert held_label in held
    r = client.post(f"/v1/workflows/{WF}/rollback", headers=op, json={"reason": "no"})
    assert r.status_code == 409 and "pinned" in r.text

    r = client.post(f"/v1/workflows/{WF}/unpin", headers=op, json={"reason": "incident over"})
    assert r.status_code == 200, r.text
    released = r.json()["live_version"]
    # the newest version held while pinned goes live (if policy still lets it)
    assert released == max(held, key=lambda v: int(v.split("@v")[1]))
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


def test_cli_reviews_a_tuner_proposal_and_operators_roll_back(client, flywheel_url, tokens, serve_settings):
    """A proposal from elsewhere (a tuner) goes through the same outbox; review and rollback by CLI."""
    from typer.testing import CliRunner

    from flywheel.registry.learned_config import LearnedConfig, RoutingConfig
    from flywheel.cli.main import app
    from flywheel.ledger import Ledger

    runner = CliRunner()

    def cli(*args, role="mlops"):
        return runner.invoke(app, [*args, "--url", flywheel_url, "--token", tokens[role]])

    from flywheel.registry.mlflow_registry import MlflowRegistry

    reg = MlflowRegistry(serve_settings.learning.mlflow_tracking_uri, serve_settings.learning.mlflow_artifacts)
    champion = reg.config(WF, reg.champion_number(WF))
    ledger = Ledger(serve_settings.resolved_database_url())
    proposal = LearnedConfig(workflow=WF, thresholds=champion.thresholds, cost_weight=champion.cost_weight,
                             routing=RoutingConfig(weights={"fast": 1.0, "balanced": 0.5, "strong": 0.2,
                                                            "frontier": 0.0}, temperature=0.5))
    ledger.enqueue_version(workflow=WF, proposed_by="tuner", position=0, config=proposal.model_dump(),
                           evidence={"estimated_gain": 0.02, "estimated_gain_se": 0.01}, learner_state=None,
                           policy_state=None)
    ledger.dispose()
    learner = serve.get_deployment_handle("learner", app_name=APP_NAME)
    deadline = time.time() + 15
    listed = None
    while time.time() < deadline:
        learner.publish_now.remote().result()
        listed = cli("proposals", "list")
        if "tuner" in listed.output:
            break
        time.sleep(0.3)
    assert listed.exit_code == 0 and "pending" in listed.output and "tuner" in listed.output, listed.output
    label = [line.split()[0] for line in listed.output.splitlines() if "tuner" in line][-1]
    number = label.split("@v")[1]
    shown = cli("proposals", "show", WF, number)
    assert shown.exit_code == 0, shown.output
    assert "routing.temperature" in shown.output and "routing.kind" in shown.output
    assert "estimated gain" in shown.output and "+0.0200" in shown.output
    assert "routing.temperature" in cli("proposals", "diff", WF, number).output

    denied = cli("proposals", "approve", WF, number, "--reason", "ok", role="operator")
    assert denied.exit_code == 1 and "403" in denied.output
    approved = cli("proposals", "approve", WF, number, "--reason", "tuned offline, gain +0.02")
    assert approved.exit_code == 0 and f"live: {label}" in approved.output, approved.output
    _live_in_runs(client, label)

    rolled = cli("rollback", WF, "--reason", "softmax routes worse", role="operator")
    assert rolled.exit_code == 0, rolled.output
    back = rolled.output.strip().rsplit("live: ", 1)[1]
    assert back != label and back.startswith(f"{WF}@v")
    _live_in_runs(client, back)
    history = cli("history", WF, role="operator")
    assert history.exit_code == 0 and "approved" in history.output and "gov-mlops" in history.output
    assert "intact" in cli("audit", "verify", role="operator").output


def test_errors_keep_their_type_and_field_over_the_serve_handle(client, tokens):
    """A 404 raised in the router replica reaches the ingress as itself (not a RayTaskError's text),
    and the HTTP answer names the request field from the error's `loc`."""
    from ray.exceptions import RayTaskError

    from flywheel.registry.governor import NotFound
    from flywheel.services.deployments.governance_client import ServeGovernance

    router = serve.get_deployment_handle("router", app_name=APP_NAME)
    with pytest.raises(RayTaskError) as wrapped:
        router.show.remote(WF, 9999).result()
    assert isinstance(wrapped.value.cause, NotFound) and wrapped.value.cause.loc == ("path", "version")
    with pytest.raises(NotFound) as raised:
        asyncio.run(ServeGovernance(router).show(WF, 9999))
    assert type(raised.value) is NotFound and (raised.value.status, raised.value.loc) == (404, ("path", "version"))

    mlops = _as(tokens["mlops"])
    r = client.get(f"/v1/workflows/{WF}/versions/9999", headers=mlops)
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "version"], r.text
    r = client.get("/v1/workflows/nope/history", headers=mlops)
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "workflow"], r.text
    r = client.post(f"/v1/workflows/{WF}/pin", headers=_as(tokens["operator"]), json={"version": 9999, "reason": "x"})
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["body", "version"], r.text
