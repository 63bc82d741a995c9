"""Hostile and buggy clients on the HTTP API, in-process: every case answers 4xx with `loc`
naming the field and stores nothing, or is accepted and stays readable; limits and rates."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from flywheel.cli.local_server import local_api
from flywheel.ledger import Ledger
from flywheel.ledger.records import OutcomeEvent
from flywheel.services.limit_settings import LimitSettings
from flywheel.services.settings import load_settings
from tests import api_scenarios as scenarios

SURROGATE = "\\ud800"  # as written in JSON: a lone surrogate once decoded


def _app(tmp_path, learning: bool = False, **limits):
    """The API in process on a fresh SQLite ledger (with ``learning``: an MLflow registry and
    the learning loop too), with a token of each role."""
    db = tmp_path / "ledger.db"
    settings = load_settings("configs/app.yaml")
    settings = settings.model_copy(update={
        "database_url": f"sqlite:///{db}",
        "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0}),
        "learning": settings.learning.model_copy(update={
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow_artifacts": str(tmp_path / "mlartifacts")}),
        "limits": LimitSettings(**limits),
    })
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    secrets = {role: ledger.create_token(role, name=f"h-{role}", created_by="tests")[1]
               for role in ("service", "operator", "mlops", "admin")}
    return local_api(settings, learning=learning), ledger, secrets


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app, ledger, secrets = _app(tmp_path_factory.mktemp("hostile"), max_body_bytes=256 * 1024,
                                per_token="100000 per second")
    with TestClient(app, headers={"Authorization": f"Bearer {secrets['service']}"}) as client:
        yield client, ledger, secrets
    ledger.dispose()


def _raw(client, path, text: str, **headers):
    return client.post(path, content=text.encode("utf-8"), headers={"Content-Type": "application/json", **headers})


def _refused(r, status, loc):
    assert r.status_code == status, r.text
    item = r.json()["detail"][0]
    assert item["loc"] == loc and item["msg"] and item["type"], item
    return item


def _runs(client) -> int:
    return client.get("/v1/workflows/ticket_triage/stats").json()["runs"]


def _ticket(**changes) -> dict:
    return {**scenarios.TICKET, **changes}


# -- lone surrogates: 422 at the field, nothing stored ----------------------------------------


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"input": _ticket(text="@S@")}, ["body", "input", "text"]),
        ({"input": _ticket(), "metadata": {"trace": "@S@"}}, ["body", "metadata", "trace"]),
        ({"input": _ticket(), "metadata": {"@S@": "x"}}, ["body", "metadata", SURROGATE]),
    ],
)
def test_a_lone_surrogate_in_a_run_is_refused_at_its_field(world, body, loc):
    client, _, _ = world
    before = _runs(client)
    r = _raw(client, "/v1/workflows/ticket_triage/runs", json.dumps(body).replace("@S@", SURROGATE))
    assert _refused(r, 422, loc)["type"] == "string_unicode"
    assert _runs(client) == before


@pytest.mark.parametrize("field", ["event_id", "run_id", "source"])
def test_a_lone_surrogate_in_an_outcome_is_refused_at_its_field(world, field):
    client, _, _ = world
    event = {"event_id": "e-s", "run_id": "r", "success": True, field: "x@S@"}
    r = _raw(client, "/v1/outcomes", json.dumps({"events": [event]}).replace("@S@", SURROGATE))
    _refused(r, 422, ["body", "events", 0, field])


@pytest.mark.parametrize("field", ["reviewer", "comment"])
def test_a_lone_surrogate_in_a_resume_is_refused_and_the_run_still_waits(world, field):
    client, _, _ = world
    run = scenarios.waiting_run(client)
    body = json.dumps({"decision": "approve", field: "x@S@"}).replace("@S@", SURROGATE)
    _refused(_raw(client, f"/v1/runs/{run['run_id']}/resume", body), 422, ["body", field])
    assert client.get(f"/v1/runs/{run['run_id']}").json()["status"] == "waiting"


def test_a_lone_surrogate_in_a_pin_reason_is_refused(world):
    client, _, secrets = world
    body = json.dumps({"version": 1, "reason": "x@S@"}).replace("@S@", SURROGATE)
    r = _raw(client, "/v1/workflows/ticket_triage/pin", body, Authorization=f"Bearer {secrets['operator']}")
    _refused(r, 422, ["body", "reason"])


def test_a_lone_surrogate_in_the_path_is_a_plain_404(world):
    client, _, _ = world
    r = client.get("/v1/runs/%ED%A0%80")
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "run_id"]


# -- malformed JSON and nesting ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"input": {"text": "caf\xe9"}}', b"{not json",
     b"[" * 1000 + b"]" * 1000, b"[" * 100_000 + b"]" * 100_000, b'{"input": ' + b"9" * 5000 + b"}"],
    ids=["latin-1", "syntax", "nested-1000", "nested-100000", "huge-int"],
)
def test_malformed_json_is_422_at_the_body(world, raw):
    client, _, _ = world
    before = _runs(client)
    r = client.post("/v1/workflows/ticket_triage/runs", content=raw, headers={"Content-Type": "application/json"})
    _refused(r, 422, ["body"])
    assert _runs(client) == before


@pytest.mark.parametrize(
    "raw,loc",
    [(b'{"input": NaN}', ["body", "input"]), (b'{"input": {"text": 1e999}}', ["body", "input", "text"]),
     (b'{"input": {"length_words": -Infinity}}', ["body", "input", "length_words"])],
    ids=["nan", "overflow", "minus-infinity"],
)
def test_a_number_that_is_not_finite_is_422_naming_its_field(world, raw, loc):
    client, _, _ = world
    before = _runs(client)
    r = client.post("/v1/workflows/ticket_triage/runs", content=raw, headers={"Content-Type": "application/json"})
    _refused(r, 422, loc)
    assert _runs(client) == before


def test_a_resume_nested_900_deep_is_refused_and_the_run_still_resumes(world):
    client, _, _ = world
    run = scenarios.waiting_run(client)
    deep = '{"a": ' * 900 + "1" + "}" * 900
    body = '{"decision": "edit", "answer": ' + deep + "}"
    item = _refused(_raw(client, f"/v1/runs/{run['run_id']}/resume", body), 422,
                    ["body", "answer", *["a"] * 31])
    assert item["type"] == "json_too_deep"
    assert client.get(f"/v1/runs/{run['run_id']}").json()["status"] == "waiting"
    ok = client.post(f"/v1/runs/{run['run_id']}/resume", json={"decision": "approve"})
    assert ok.status_code == 200, ok.text
    assert client.get(f"/v1/runs/{run['run_id']}").status_code == 200


def test_metadata_values_are_stored_and_read_back_intact(world):
    client, _, _ = world
    run = scenarios.start(client, metadata={"note": "caf\u00e9 \U0001f600 \\ud800 as text"})
    detail = client.get(f"/v1/runs/{run['run_id']}")
    assert detail.status_code == 200
    assert detail.json()["metadata"] == {"note": "caf\u00e9 \U0001f600 \\ud800 as text"}


# -- sizes ------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(world):
    client, _, _ = world
    before = _runs(client)
    r = client.post("/v1/workflows/ticket_triage/runs", json={"input": _ticket(text="x" * (10 * 1024 * 1024))})
    _refused(r, 413, ["body"])
    many = {f"k{i}": "v" for i in range(50_000)}
    _refused(client.post("/v1/workflows/ticket_triage/runs", json={"input": _ticket(), "metadata": many}),
             413, ["body"])
    assert _runs(client) == before


def test_run_sizes_are_refused_at_their_field(world):
    client, _, _ = world
    before = _runs(client)
    cases = [
        ({"input": _ticket(text="x" * 100_001)}, ["body", "input", "text"]),
        ({"input": _ticket(), "metadata": {f"k{i}": "v" for i in range(65)}}, ["body", "metadata"]),
        ({"input": _ticket(), "metadata": {"k": "v" * 1025}}, ["body", "metadata", "k"]),
    ]
    for body, loc in cases:
        _refused(client.post("/v1/workflows/ticket_triage/runs", json=body), 422, loc)
    assert _runs(client) == before


def test_a_workflow_spec_overrides_run_limits():
    from flywheel.workflows.run_limits import RunLimits, RunLimitsOverride, size_problems

    limits = RunLimitsOverride(max_text_chars=5).over(RunLimits())
    assert limits.max_text_chars == 5 and limits.max_metadata_keys == RunLimits().max_metadata_keys
    assert size_problems(limits, {"text": "123456"}, {}) == [(("input", "text"), "longer than 5 characters (6)")]


def test_outcome_batches_and_reasons_are_bounded(world):
    client, _, secrets = world
    events = [{"event_id": f"b{i}", "run_id": "r", "success": True} for i in range(1001)]
    _refused(client.post("/v1/outcomes", json={"events": events}), 422, ["body", "events"])
    operator = {"Authorization": f"Bearer {secrets['operator']}"}
    pin = "/v1/workflows/ticket_triage/pin"
    _refused(client.post(pin, json={"version": 1, "reason": "x" * 200_000}, headers=operator), 422, ["body", "reason"])
    _refused(client.post(pin, json={"version": 1, "reason": "x" * 2001}, headers=operator), 422, ["body", "reason"])
    _refused(client.post(pin, json={"version": 2**63, "reason": "r"}, headers=operator), 422, ["body", "version"])
    mlops = {"Authorization": f"Bearer {secrets['mlops']}"}
    r = client.post(f"/v1/workflows/ticket_triage/versions/{2**63}/approve", json={"reason": "r"}, headers=mlops)
    _refused(r, 422, ["path", "version"])
    # valid, but this service has no registry: 503 without any URI
    r = client.post(pin, json={"version": 1, "reason": "r"}, headers=operator)
    assert r.status_code == 503 and "://" not in r.text


# -- reserved event ids, the reviewer, one transaction ----------------------------------------


def test_human_event_ids_are_refused_from_clients_and_the_human_verdict_counts(world):
    client, _, _ = world
    run = scenarios.waiting_run(client)
    early = {"event_id": f"human:{run['run_id']}", "run_id": run["run_id"], "success": True}
    item = _refused(client.post("/v1/outcomes", json={"events": [{"event_id": "ok-1", "run_id": "x",
                                                                  "success": True}, early]}),
                    422, ["body", "events", 1, "event_id"])
    assert "human:" in item["msg"]
    r = client.post(f"/v1/runs/{run['run_id']}/resume", json={"decision": "reject", "reviewer": "mallory"})
    assert r.status_code == 200, r.text
    detail = client.get(f"/v1/runs/{run['run_id']}").json()
    human = [o for o in detail["outcomes"] if o["event_id"] == f"human:{run['run_id']}"]
    assert len(human) == 1 and human[0]["success"] is False and human[0]["source"] == "human:h-service"
    step = [s for s in detail["steps"] if s["kind"] == "human"][-1]
    assert step["output"]["reviewer"] == "h-service"


def test_a_failing_outcome_write_rolls_back_the_resume(world, monkeypatch):
    client, ledger, _ = world
    run = scenarios.waiting_run(client)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("flywheel.ledger.outcomes.record_outcomes", broken)
    r = client.post(f"/v1/runs/{run['run_id']}/resume", json={"decision": "approve"})
    _refused(r, 500, ["server"])
    assert "disk full" not in r.text
    monkeypatch.undo()
    after = client.get(f"/v1/runs/{run['run_id']}").json()
    assert after["status"] == "waiting" and after["outcomes"] == []
    assert client.post(f"/v1/runs/{run['run_id']}/resume", json={"decision": "approve"}).status_code == 200


def test_a_taken_human_event_id_is_409_and_changes_nothing(world):
    client, ledger, _ = world
    run = scenarios.waiting_run(client)
    # as stored by an older version that let clients write human: ids
    ledger.record_outcomes([OutcomeEvent(event_id=f"human:{run['run_id']}", run_id=run["run_id"], success=True)],
                           lambda *a: 0.0)
    r = client.post(f"/v1/runs/{run['run_id']}/resume", json={"decision": "reject"})
    _refused(r, 409, ["path", "run_id"])
    after = client.get(f"/v1/runs/{run['run_id']}")
    assert after.json()["status"] == "waiting", after.text


# -- rates --------------------------------------------------------------------------------------


def test_a_token_over_its_rate_gets_429_with_retry_after(tmp_path):
    app, ledger, secrets = _app(tmp_path, per_token="5 per minute")
    with TestClient(app) as client:
        mine = {"Authorization": f"Bearer {secrets['service']}"}
        codes = [client.get("/v1/workflows", headers=mine).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        r = client.get("/v1/workflows", headers=mine)
        _refused(r, 429, ["header", "authorization"])
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        other = client.get("/v1/workflows", headers={"Authorization": f"Bearer {secrets['admin']}"})
        assert other.status_code == 200
    ledger.dispose()


def test_failed_authentications_are_throttled_per_address(tmp_path):
    app, ledger, secrets = _app(tmp_path, failed_auth_per_client="3 per minute")
    with TestClient(app) as client:
        codes = [client.get("/v1/workflows", headers={"Authorization": f"Bearer fw_guess{i}"}).status_code
                 for i in range(4)]
        assert codes == [401, 401, 401, 429]
        r = client.get("/v1/workflows", headers={"Authorization": f"Bearer {secrets['service']}"})
        _refused(r, 429, ["header", "authorization"])
        assert int(r.headers["Retry-After"]) >= 1
        assert client.get("/v1/health").status_code == 200
    ledger.dispose()


def test_limits_settings_refuse_a_bad_rate():
    with pytest.raises(ValueError, match="per_token"):
        LimitSettings(per_token="fast please")


# -- 500s ---------------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_not_a_dropped_connection(world, monkeypatch):
    client, _, _ = world
    runtime = client.app.state.holder._runtime

    async def broken(workflow):
        raise RuntimeError("postgresql://user:secret@db/x is down")

    monkeypatch.setattr(runtime, "stats", broken)
    r = client.get("/v1/workflows/ticket_triage/stats")  # TestClient would raise if the app re-raised
    item = _refused(r, 500, ["server"])
    assert item["type"] == "internal" and "secret" not in r.text
