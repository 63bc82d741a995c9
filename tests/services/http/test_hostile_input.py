"""Hostile numbers cannot poison learning: the HTTP API refuses them (422 naming the field,
nothing stored), and a learner fed them directly (past the edge) refuses them too, its
published decisions unchanged, with a `refused` learning event in the ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from flywheel.cli.local_server import local_api
from flywheel.services.limit_settings import LimitSettings
from flywheel.learners.loop import LearningLoop
from flywheel.learners.state import loads_policy
from flywheel.ledger import Ledger
from flywheel.ledger.engine import write_transaction
from flywheel.ledger.records import OutcomeEvent
from flywheel.ledger.tables import outcomes
from flywheel.services.agents.local import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import load_settings
from flywheel.sim import Environment, TrafficGenerator, load_scenario
from flywheel.workflows.engine import FAILURE_EVENT_PREFIX
from flywheel.workflows.inputs import features_of
from tests import api_scenarios as scenarios

REPORT = {"request": "Quarterly churn by region", "report_type": "analysis", "audience": "executive",
          "length_words": 400}
NAN, INF = float("nan"), float("inf")

# (field, value) of an outcome that must be refused with 422 at body.events.0.<field>
BAD_OUTCOMES = [
    ("cost", 1e308), ("cost", INF), ("cost", NAN), ("cost", -1.0), ("cost", 1000.5), ("cost", True),
    ("latency_s", 1e308), ("latency_s", -INF), ("latency_s", NAN), ("latency_s", 86400.5), ("latency_s", -2),
    ("quality", NAN), ("quality", 1.5), ("quality", -1e308), ("quality", True),
    ("occurred_at", False), ("occurred_at", INF), ("occurred_at", -1.0),
    ("success", "yes"), ("success", 1), ("human_override", 0),
]
# values of length_words that must be refused with 422 at body.input.length_words
BAD_LENGTHS = [-1e308, 1e308, NAN, INF, -INF, -1, 0, 20001, True, "400"]


def _post(client, url, body):
    """POST `body` as JSON with NaN and infinities written as Python's json writes them
    (NaN, Infinity): what a hostile client sends, and what the server's JSON parser reads."""
    return client.post(url, content=json.dumps(body), headers={"Content-Type": "application/json"})


def _settings(db):
    settings = load_settings("configs/app.yaml")
    return settings.model_copy(update={"database_url": f"sqlite:///{db}",
                                       "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0})})


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("hostile") / "ledger.db")
    # these tests post far faster than one client may: the rate limit is tested in test_hostile.py
    settings = settings.model_copy(update={"limits": LimitSettings(per_token="100000 per second")})
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    _, token = ledger.create_token("service", name="hostile-tests", created_by="tests")
    ledger.dispose()
    with TestClient(local_api(settings), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def _client_outcomes(client, run) -> list[dict]:
    """The run's stored outcomes but the service's own (a failed run's `failure:` outcome)."""
    stored = client.get(f"/v1/runs/{run['run_id']}").json()["outcomes"]
    return [o for o in stored if not o["event_id"].startswith(FAILURE_EVENT_PREFIX)]


@pytest.mark.parametrize("field,value", BAD_OUTCOMES, ids=[f"{f}={v!r}" for f, v in BAD_OUTCOMES])
def test_a_hostile_outcome_is_422_naming_the_field_and_stores_nothing(client, field, value):
    run = scenarios.start(client)
    event = {"event_id": f"ev-{uuid.uuid4().hex}", "run_id": run["run_id"], "success": True, field: value}
    r = _post(client, "/v1/outcomes", {"events": [event]})
    assert r.status_code == 422, r.text
    assert ["body", "events", 0, field] in [e["loc"] for e in r.json()["detail"]]
    assert _client_outcomes(client, run) == []
    # the same event with the field left out is accepted: only the number was wrong
    del event[field]
    if field == "success":
        event["quality"] = 1.0
    ok = client.post("/v1/outcomes", json={"events": [event]})
    assert ok.status_code == 200 and ok.json()["new"] == 1, ok.text


def test_one_bad_event_refuses_the_whole_batch(client):
    run = scenarios.start(client)
    good = {"event_id": f"ev-{uuid.uuid4().hex}", "run_id": run["run_id"], "success": True}
    bad = {"event_id": f"ev-{uuid.uuid4().hex}", "run_id": run["run_id"], "success": True, "cost": 1e308}
    r = _post(client, "/v1/outcomes", {"events": [good, bad]})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "events", 1, "cost"]]
    assert _client_outcomes(client, run) == []


@pytest.mark.parametrize("value", BAD_LENGTHS, ids=[repr(v) for v in BAD_LENGTHS])
def test_a_hostile_run_input_is_422_naming_the_field(client, value):
    before = client.get("/v1/workflows/report_generation/stats").json()["runs"]
    r = _post(client, "/v1/workflows/report_generation/runs", {"input": {**REPORT, "length_words": value}})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "input", "length_words"]]
    assert client.get("/v1/workflows/report_generation/stats").json()["runs"] == before
    assert scenarios.start(client, "report_generation", REPORT)["status"] in {"completed", "waiting", "failed"}


def test_mean_reward_stays_a_number(client):
    run = scenarios.start(client, "report_generation", REPORT)
    r = client.post("/v1/outcomes", json={"events": [
        {"event_id": f"ev-{uuid.uuid4().hex}", "run_id": run["run_id"], "quality": 1.0, "cost": 1000.0}]})
    assert r.status_code == 200 and r.json()["new"] == 1, r.text
    stats = client.get("/v1/workflows/report_generation/stats").json()
    assert stats["mean_reward"] is not None and math.isfinite(stats["mean_reward"])


# -- the learner, fed directly --------------------------------------------------------------

async def _stream(runtime: Runtime, ticks: range) -> None:
    scenario = load_scenario("stationary")
    env, traffic = Environment(scenario), TrafficGenerator(scenario, seed=5)
    for tick in ticks:
        req = traffic.at(tick)
        run = await runtime.start_run(req.workflow, req.input, {"sim_tick": str(tick)})
        ok, q = (False, 0.0) if run.status == "failed" else (
            (t := env.respond(run.decision.arm, req.workflow, req.input, tick)).correct, t.score)
        await runtime.post_outcomes([OutcomeEvent(event_id=f"o-{run.run_id}", run_id=run.run_id, success=ok, quality=q)])


async def _poison(runtime: Runtime) -> list[str]:
    """Hostile rows written straight into the ledger, past every edge check; their event ids."""
    ledger = runtime.ledger
    clean = [o for o in ledger.outcomes_after(0, limit=10**6)]
    ticket = next(o for o in clean if o.workflow == "ticket_triage")
    report = next(o for o in clean if o.workflow == "report_generation")
    rows = []
    for i, (field, value) in enumerate([("cost", 1e308), ("latency_s", INF), ("quality", 1e308), ("cost", -5.0)]):
        base = dataclasses.asdict(ticket)
        base.pop("position")
        rows.append({**base, "event_id": f"poison-{i}", field: value, "reward": -INF})  # SQLite keeps no NaN
    with write_transaction(ledger.engine) as connection:
        connection.execute(insert(outcomes), rows)
    ids = [r["event_id"] for r in rows]
    # runs whose logged features are absurd (as if their input had never been checked), each with a sane outcome
    view = ledger.get_run(report.run_id)
    for j, length in enumerate([-1e308, 1e308, NAN]):
        run_id = uuid.uuid4().hex
        run = dataclasses.replace(
            view.run, run_id=run_id, input={**view.run.input, "length_words": length},
            steps=[dataclasses.replace(s, run_id=run_id) for s in view.run.steps],
            decision=dataclasses.replace(view.run.decision, run_id=run_id,
                                         features={**view.run.decision.features, "length_words": length}))
        ledger.insert_new_runs([run])
        await runtime.post_outcomes([OutcomeEvent(event_id=f"poison-run-{j}", run_id=run_id, success=True)])
        ids.append(f"poison-run-{j}")
    return ids


class _Without:
    """The ledger as a learner that never saw `event_ids` would read it."""

    def __init__(self, ledger: Ledger, event_ids: set[str]):
        self._ledger, self._ids = ledger, event_ids

    def joined_outcomes_after(self, position, **kw):
        return [j for j in self._ledger.joined_outcomes_after(position, **kw) if j.outcome.event_id not in self._ids]

    def __getattr__(self, name):
        return getattr(self._ledger, name)


def _probe(policy, specs) -> list[tuple]:
    scenario = load_scenario("stationary")
    traffic = TrafficGenerator(scenario, seed=77)
    out = []
    for tick in range(200):
        req = traffic.at(tick)
        c = policy[req.workflow].decide(features_of(specs[req.workflow], req.input), f"probe-{tick}",
                                        specs[req.workflow].arms)
        out.append((c.arm, c.propensity, tuple(sorted(c.scores.items()))))
    return out


def test_a_learner_fed_hostile_examples_refuses_them_and_decides_as_if_never_seen(tmp_path):
    settings = _settings(tmp_path / "ledger.db")
    runtime = Runtime.from_settings(settings, LocalAgents.from_settings(settings))

    async def traffic() -> list[str]:  # one event loop: the runtime's writer lives on it
        await _stream(runtime, range(0, 150))
        poison = await _poison(runtime)
        await _stream(runtime, range(150, 300))
        await runtime.close()
        return poison

    poison = asyncio.run(traffic())
    loops = {
        "fed": LearningLoop(runtime.specs, runtime.ledger, None, seed=0, n_bits=12),
        "never": LearningLoop(runtime.specs, _Without(runtime.ledger, set(poison)), None, seed=0, n_bits=12),
    }
    policies = {}
    for name, loop in loops.items():
        while loop.position < runtime.ledger.outcomes_after(0, limit=10**6)[-1].position:
            loop.step(limit=64)
        policies[name] = {p.config.workflow: loads_policy(p.policy_state) for p in loop.publish_due(force=True)}
        for learner in loop.learners.values():
            assert all(math.isfinite(v) for v in learner.evidence().values() if v != INF)
    assert set(policies["fed"]) == {"ticket_triage", "report_generation"}
    assert loops["fed"].learners["ticket_triage"].n_updates == loops["never"].learners["ticket_triage"].n_updates
    assert _probe(policies["fed"], runtime.specs) == _probe(policies["never"], runtime.specs)
    refused = [e for wf in runtime.specs for e in runtime.ledger.learning_events(wf) if e.kind == "refused"]
    assert sorted(e.detail["event_id"] for e in refused) == sorted(poison)
    reasons = {e.detail["event_id"]: e.detail["reason"] for e in refused}
    assert reasons["poison-0"].startswith("cost must be a finite number")
    assert reasons["poison-2"].startswith("quality must be a finite number")
    assert reasons["poison-run-0"].startswith("x.length_words must be a finite number")
