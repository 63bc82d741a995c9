"""The tune job's search space under a governance policy, and which Ray a job runs on (no Ray started)."""

from __future__ import annotations

import sys

import pytest

from flywheel.eval.logged_sim import packaged_spec
from flywheel.learners import tune as tune_module
from flywheel.learners.tune_objective import SearchSpace
from flywheel.registry.policy import WorkflowPolicy

WF = "ticket_triage"
CHAMPION = {"cost_weight": 20.0, "routing.exploration": 0.1, "thresholds.confidence": 0.6}


def _policy() -> WorkflowPolicy:
    return WorkflowPolicy(parameters={
        "thresholds.*": {"min": 0.3, "max": 0.95, "max_step": 0.1, "over_step": "clip"},
        "routing.exploration": {"min": 0.0, "max": 0.5},
        "cost_weight": {"autonomy": "frozen"},
    })


def test_a_frozen_parameter_stays_at_the_champions_value_and_steps_stay_within_max_step():
    space = SearchSpace.of(packaged_spec(WF), _policy(), champion=CHAMPION)
    assert space.bounds["cost_weight"] == (20.0, 20.0)
    assert space.fixed() == {"cost_weight": 20.0}
    assert space.bounds["thresholds.confidence"] == pytest.approx((0.5, 0.7))
    assert space.free()["routing.exploration"] == (0.0, 0.5)
    # a point the search proposes keeps the frozen value whatever it asks for
    assert space.candidate({**CHAMPION, "cost_weight": 5.0, "thresholds.confidence": 0.9}).thresholds == {
        "confidence": pytest.approx(0.7)}
    assert space.candidate({**CHAMPION, "cost_weight": 5.0}).cost_weight == 20.0


def test_without_a_champion_the_space_is_the_policy_and_spec_bounds():
    space = SearchSpace.of(packaged_spec(WF), _policy())
    assert space.bounds["cost_weight"] == (5.0, 80.0) and space.fixed() == {}
    assert space.bounds["thresholds.confidence"] == (0.3, 0.95)


class _FakeRay:
    """Stands in for the ray module: records init/shutdown."""

    def __init__(self, connected: bool):
        self.connected = connected
        self.calls: list[tuple[str, dict]] = []

    def is_initialized(self) -> bool:
        return self.connected

    def init(self, **kwargs) -> None:
        self.calls.append(("init", kwargs))

    def shutdown(self) -> None:
        self.calls.append(("shutdown", {}))


@pytest.fixture
def fake_ray(monkeypatch):
    def make(connected: bool) -> _FakeRay:
        fake = _FakeRay(connected)
        monkeypatch.setitem(sys.modules, "ray", fake)
        return fake

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return make


def test_a_job_starts_its_own_local_ray_rather_than_joining_one_it_finds(fake_ray):
    ray = fake_ray(connected=False)
    with tune_module.ray_for_job(None, local_cpus=2):
        assert ray.calls[0][1]["address"] == "local" and ray.calls[0][1]["num_cpus"] == 2
        assert ray.calls[0][1]["include_dashboard"] is False
    assert ray.calls[-1][0] == "shutdown"


def test_a_job_joins_only_an_explicit_address(fake_ray, monkeypatch):
    ray = fake_ray(connected=False)
    with tune_module.ray_for_job("10.0.0.5:6379"):
        pass
    assert ray.calls[0][1]["address"] == "10.0.0.5:6379" and ray.calls[-1][0] == "shutdown"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.6:6379")
    ray = fake_ray(connected=False)
    with tune_module.ray_for_job(None):
        pass
    assert ray.calls[0][1]["address"] == "10.0.0.6:6379"


def test_a_job_in_a_connected_process_uses_that_ray_and_leaves_it_up(fake_ray):
    ray = fake_ray(connected=True)
    with tune_module.ray_for_job("10.0.0.5:6379"):
        pass
    assert ray.calls == []


def test_a_proposal_carries_the_tuned_values_and_the_resource_plan():
    from flywheel.learners.capacity import AgentLoad, plan_resources
    from flywheel.learners.counterfactual import Candidate, candidate_state
    from flywheel.learners.state import dumps_policy
    from flywheel.learners.tune import TuneResult, proposal
    from flywheel.learners.tune_objective import Constraints, TuneData
    from flywheel.learners.workflow_learner import WorkflowLearner
    from flywheel.registry.learned_config import LearnedConfig, RoutingConfig

    spec = packaged_spec(WF)
    base = dumps_policy(WorkflowLearner(spec, seed=0).policy())
    champion = LearnedConfig(workflow=WF, thresholds={"confidence": 0.6}, routing=RoutingConfig(kind="bandit"),
                             cost_weight=20.0, resources={"strong.min_replicas": 1.0})
    data = TuneData(spec=spec, examples=[], base_state=base, constraints=Constraints(0.3, 0.05))
    space = SearchSpace.of(spec, _policy(), champion=CHAMPION)
    point = {**CHAMPION, "routing.exploration": 0.2, "thresholds.confidence": 0.65}
    metrics = {"estimate": 0.9, "estimate_low": 0.85, "estimate_high": 0.95, "ips": 0.9, "snips": 0.9,
               "human_share": 0.2, "unattended_error": 0.01, "feasible": 1.0}
    result = TuneResult(point, metrics, {**metrics, "estimate": 0.88}, trials=8, stopped_early=3, seconds=1.0)
    plan = plan_resources({"fast": AgentLoad(5.0, 20.0, 1.0, slots=4)}, 4.0)
    config, state, evidence = proposal(champion, data, space, result, plan)
    assert config.thresholds == {"confidence": 0.65} and config.routing.exploration == 0.2
    assert config.cost_weight == 20.0
    assert config.resources == {"strong.min_replicas": 1.0, "fast.min_replicas": 2.0, "fast.max_replicas": 6.0,
                                "fast.target_ongoing_requests": plan["fast.target_ongoing_requests"]}
    assert state == candidate_state(base, Candidate(20.0, 0.2, {"confidence": 0.65}), spec)
    assert evidence["estimated_gain"] == pytest.approx(0.02) and evidence["trials"] == 8.0
