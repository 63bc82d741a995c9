"""Resource plans live: a plan of the logged load, approved, reaches Serve's agent deployments in place."""

from __future__ import annotations

import time

import ray
from ray import serve

from flywheel.ledger import Ledger
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.services.app import APP_NAME
from flywheel.services.resource_planning import PROPOSER, plan_workflow_resources
from flywheel.services.serve_config import details
from tests.integration.test_learning import _drive

WF = "ticket_triage"
KEYS = ("min_replicas", "max_replicas", "target_ongoing_requests")


def _reviewed(serve_settings, tmp_path):
    """The session's settings, with a policy that sends resources to review (as the packaged one does)."""
    policies = tmp_path / "policies.yaml"
    policies.write_text("default:\n  parameters:\n    resources.*: {autonomy: review}\n"
                        "    cost_weight: {autonomy: frozen}\n")
    return serve_settings.model_copy(update={
        "governance": serve_settings.governance.model_copy(update={"policies": str(policies)}),
        "tuning": serve_settings.tuning.model_copy(update={"resources_trials": 6}),
    })


def _running() -> dict[str, tuple[dict, set[str]]]:
    """Per deployment of the app: (its autoscaling config, the ids of its running replicas)."""
    app = details()["applications"][APP_NAME]
    return {name: ((d["deployment_config"].get("autoscaling_config") or {}),
                   {r["replica_id"] for r in d["replicas"] if r["state"] == "RUNNING"})
            for name, d in app["deployments"].items()}


def _wait_for(scalings: dict[str, dict], replicas: dict[str, int] | None = None, timeout_s: float = 90.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        now = _running()
        if serve.status().applications[APP_NAME].status == "RUNNING" and all({k: now[d][0].get(k) for k in KEYS} == want for d, want in scalings.items()) and all(
            len(now[d][1]) == n for d, n in (replicas or {}).items()
        ):
            return now
        time.sleep(0.5)
    raise AssertionError(f"Serve runs {_running()}, not {scalings} / {replicas}")


def _approve(number: int) -> None:
    router = serve.get_deployment_handle("router", app_name=APP_NAME)
    router.approve.remote(WF, number, actor="tests", reason="resource plan").result()


def test_an_approved_plan_changes_the_agents_autoscaling_without_restarting_replicas(
        client, serve_settings, tmp_path):
    events = _drive(client, 200, start_tick=9000)  # agent calls in the ledger: the load to plan on
    assert client.post("/v1/outcomes", json={"events": events}).status_code == 200
    serve.get_deployment_handle("learner", app_name=APP_NAME).publish_now.remote().result()  # a champion
    registry = MlflowRegistry(serve_settings.learning.mlflow_tracking_uri, serve_settings.learning.mlflow_artifacts)
    before = _running()
    assert {k: before["agent-fast"][0][k] for k in KEYS} == {"min_replicas": 1, "max_replicas": 1,
                                                               "target_ongoing_requests": 2.0}

    out = plan_workflow_resources(_reviewed(serve_settings, tmp_path), WF, progress=False)

    assert ray.is_initialized() and out["trials"] == 6
    assert all(a["meets"] for a in out["agents"]), out["agents"]
    [proposal] = registry.versions(WF, tags={"proposed_by": PROPOSER})
    assert proposal.tags["status"] == "pending", proposal.tags
    planned = registry.config(WF, proposal.number).resources
    assert planned == {**planned, **out["resources"]} and "fast.target_ongoing_requests" in planned
    wanted = {f"agent-{a['agent']}": {"min_replicas": a["min_replicas"], "max_replicas": a["max_replicas"],
                                      "target_ongoing_requests": a["target_ongoing_requests"]}
              for a in out["agents"]}

    print("\nplan:", out["agents"])
    _approve(proposal.number)

    after = _wait_for(wanted)
    for name, (_, ids) in before.items():  # every replica that ran before runs still: none restarted
        assert ids <= after[name][1], (name, ids, after[name][1])
    status = serve.status().applications[APP_NAME]
    assert status.status == "RUNNING" and status.deployments["agent-fast"].status == "HEALTHY"

    # A plan that adds a replica: Serve starts one beside the running one.
    ledger = Ledger(serve_settings.resolved_database_url())
    champion = registry.champion(WF)
    more = {**champion.config.resources, "fast.min_replicas": 2.0, "fast.max_replicas": 3.0}
    ledger.enqueue_version(workflow=WF, proposed_by=PROPOSER, position=champion.position,
                           config=champion.config.model_copy(update={"version": "", "resources": more}).model_dump(),
                           evidence={}, learner_state=None, policy_state=champion.policy_state)
    from flywheel.services.wiring import governor_of

    governor = governor_of(_reviewed(serve_settings, tmp_path), ledger)
    [judged] = [o for o in governor.publish_outbox() if o.workflow == WF and o.action == "propose"]
    ledger.dispose()
    _approve(judged.number)
    grown = _wait_for({"agent-fast": {**wanted["agent-fast"], "min_replicas": 2, "max_replicas": 3}},
                      replicas={"agent-fast": 2})
    assert after["agent-fast"][1] < grown["agent-fast"][1]  # the old replica kept, one added
    assert serve.status().applications[APP_NAME].deployments["agent-fast"].replica_states.get("RUNNING") == 2
    assert grown["router"][1] == before["router"][1] and grown["ingress"][1] == before["ingress"][1]


def test_the_tune_jobs_plan_meets_p95_in_the_simulation_at_no_more_than_the_closed_form_cost(ray_session):
    from flywheel.eval.resource_check import simulate_plan
    from flywheel.learners.capacity import AgentLoad
    from flywheel.learners.resource_tune import AgentDemand, search_resources

    demands = [
        AgentDemand("fast", AgentLoad(mean_rate=30.0, peak_rate=80.0, mean_service_s=0.3, slots=4), target_s=4.0,
                    service_cv=0.35),
        AgentDemand("gpu", AgentLoad(mean_rate=90.0, peak_rate=240.0, mean_service_s=0.8, slots=64), target_s=4.0,
                    replica_cost=12.0, accelerators_per_replica=1, service_cv=0.3),
    ]
    result = search_resources(demands, trials=12, seed=0, progress=False)

    assert ray.is_initialized() and result.trials == 12
    assert sum(a.cost for a in result.assessments.values()) <= result.start_cost + 1e-9
    assert all(a.violation == 0 for a in result.assessments.values())
    checked = simulate_plan(demands, result, requests=20000, seed=2)
    assert all(c.meets for c in checked), checked
    assert all(c.peak_replicas > c.mean_replicas for c in checked)  # the autoscaler has room to grow
