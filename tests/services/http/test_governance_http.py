"""Governance over HTTP through the local app (in-process operations, no Ray): typed results,
errors as the status and request field they concern, and what is live follows each change."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from flywheel.cli.local_server import local_api
from flywheel.ledger import Ledger
from flywheel.registry.learned_config import initial_config
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import load_settings

WF = "ticket_triage"
TICKET = {"text": "my parcel never arrived", "product": "shipping", "customer_tier": "pro", "channel": "chat"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(client, settings, {role: bearer headers}) of a local app with its registry and learning loop."""
    root = tmp_path_factory.mktemp("gov-http")
    base = load_settings("configs/app.yaml")
    settings = base.model_copy(update={
        "database_url": f"sqlite:///{root}/ledger.db",
        "simulator": base.simulator.model_copy(update={"latency_scale": 0.0}),
        "learning": base.learning.model_copy(update={
            "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db", "mlflow_artifacts": str(root / "art"),
            "poll_s": 0.1, "publish_every_outcomes": 10**9, "publish_every_s": 10**6}),
    })
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    headers = {role: {"Authorization": f"Bearer {ledger.create_token(role, name=f'gov-{role}', created_by='tests')[1]}"}
               for role in ("service", "mlops", "operator")}
    ledger.dispose()
    with TestClient(local_api(settings, learning=True)) as client:
        yield client, settings, headers


def _propose(settings, **routing) -> int:
    """Put a version of ticket_triage in the ledger's outbox (as any proposer does) and wait for
    the governor to register it; its number."""
    spec = load_workflows(settings)[WF]
    start = initial_config(spec, seed=settings.seed)
    config = start.model_copy(update={"version": "", "routing": start.routing.model_copy(update=routing)})
    registry = MlflowRegistry(settings.learning.mlflow_tracking_uri, settings.learning.mlflow_artifacts)
    before = len(registry.versions(WF))
    ledger = Ledger(settings.resolved_database_url())
    ledger.enqueue_version(workflow=WF, proposed_by="tests", position=0, config=config.model_dump(),
                           evidence={}, learner_state=None, policy_state=None)
    ledger.dispose()
    deadline = time.time() + 30
    while time.time() < deadline:
        found = registry.versions(WF)
        if len(found) > before:
            return found[-1].number
        time.sleep(0.1)
    raise AssertionError("the version was not registered")


def _detail(r) -> tuple[int, list[str]]:
    return r.status_code, r.json()["detail"][0]["loc"]


def test_review_and_operators_over_http(world):
    client, settings, h = world
    first = _propose(settings)
    pending = _propose(settings, temperature=2.5)  # temperature: review by policy

    listed = client.get("/v1/proposals", params={"workflow": WF}, headers=h["mlops"])
    assert listed.status_code == 200 and [p["number"] for p in listed.json()["proposals"]] == [pending]
    shown = client.get(f"/v1/workflows/{WF}/versions/{pending}", headers=h["mlops"]).json()
    assert shown["version"]["status"] == "pending" and shown["champion"] == first
    assert {"parameter": "routing.temperature", "champion": 1.0, "proposal": 2.5} in shown["diff"]

    done = client.post(f"/v1/workflows/{WF}/versions/{pending}/approve", headers=h["mlops"],
                       json={"reason": "looked at it"})
    assert done.status_code == 200, done.text
    assert done.json()["live_version"] == f"{WF}@v{pending}" and done.json()["champion_changed"]
    run = client.post(f"/v1/workflows/{WF}/runs", headers=h["service"], json={"input": TICKET}).json()
    assert run["decision"]["config_version"] == f"{WF}@v{pending}"  # live at once, no back door

    rolled = client.post(f"/v1/workflows/{WF}/rollback", headers=h["operator"], json={"reason": "worse"})
    assert rolled.status_code == 200 and rolled.json()["live_version"] == f"{WF}@v{first}"
    history = client.get(f"/v1/workflows/{WF}/history", headers=h["operator"]).json()
    assert [e["action"] for e in history["events"]] == ["auto-promote", "propose", "approve", "rollback"]
    assert client.get("/v1/audit/verify", headers=h["operator"]).json()["intact"]


def test_errors_answer_with_status_and_field(world):
    client, _, h = world
    mlops, op = h["mlops"], h["operator"]
    assert _detail(client.get(f"/v1/workflows/{WF}/versions/999", headers=mlops)) == (404, ["path", "version"])
    assert _detail(client.get("/v1/workflows/nope/history", headers=mlops)) == (404, ["path", "workflow"])
    assert _detail(client.get("/v1/proposals", params={"workflow": "nope"}, headers=mlops)) == (
        404, ["query", "workflow"])
    assert _detail(client.post(f"/v1/workflows/{WF}/pin", headers=op, json={"version": 999, "reason": "x"})) == (
        404, ["body", "version"])
    assert _detail(client.post(f"/v1/workflows/{WF}/versions/1/approve", headers=mlops,
                               json={"reason": "x"})) == (409, ["path", "version"])
    r = client.post(f"/v1/workflows/{WF}/unpin", headers=op, json={"reason": "x"})
    assert _detail(r) == (409, ["path", "workflow"]) and "not pinned" in r.json()["detail"][0]["msg"]


def test_without_a_registry_governance_is_a_503(tmp_path):
    settings = load_settings("configs/app.yaml")
    settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/ledger.db"})
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    _, secret = ledger.create_token("mlops", name="m", created_by="tests")
    ledger.dispose()
    with TestClient(local_api(settings)) as client:  # no learning: no registry
        r = client.get("/v1/proposals", headers={"Authorization": f"Bearer {secret}"})
    assert _detail(r) == (503, ["service"]) and "learning.enabled" in r.json()["detail"][0]["msg"]
