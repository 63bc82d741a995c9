"""The resource objective: Serve's autoscaler against M/M/c, cost and p95 shortfall of a candidate."""

from __future__ import annotations

import pytest

from flywheel.learners.capacity import AgentLoad, plan
from flywheel.learners.resource_tune import (
    AgentDemand, ResourcePlan, Scaling, assess, autoscaled_replicas, closed_form_point, resources_of, scaling_of,
    score,
)

FAST = AgentDemand("fast", AgentLoad(mean_rate=5.0, peak_rate=20.0, mean_service_s=1.0, slots=4), target_s=4.0)
GPU = AgentDemand("big", AgentLoad(mean_rate=2.0, peak_rate=6.0, mean_service_s=2.2, slots=8), target_s=8.0,
                  replica_cost=12.0, accelerators_per_replica=1)


def test_the_autoscaler_adds_replicas_as_the_rate_grows_within_its_bounds():
    scaling = Scaling(min_replicas=2, max_replicas=6, target_ongoing_requests=3.0)
    replicas = [autoscaled_replicas(rate, FAST.load, scaling) for rate in (0.1, 5.0, 10.0, 20.0, 40.0)]
    assert replicas == sorted(replicas) and replicas[0] == 2 and replicas[-1] == 6
    assert replicas[1] < replicas[3]


def test_the_closed_form_plan_meets_the_target_and_cheaper_candidates_miss_it():
    start = scaling_of("fast", closed_form_point([FAST]))
    p = plan(FAST.load, FAST.target_s)
    assert (start.min_replicas, start.max_replicas) == (p.min_replicas, p.max_replicas)
    ok = assess(FAST, start)
    assert ok.violation == 0.0 and ok.peak_p95_s <= FAST.target_s and ok.mean_p95_s <= FAST.target_s
    assert (ok.mean_replicas, ok.peak_replicas) == (p.min_replicas, p.max_replicas)
    fewer = Scaling(start.min_replicas, start.max_replicas - 1, start.target_ongoing_requests)
    lazy = Scaling(start.min_replicas, start.max_replicas, 50.0)  # scales up only when the queue overflows
    for worse in (fewer, lazy):
        a = assess(FAST, worse)
        assert a.violation > 0 and a.cost <= ok.cost
    assert assess(FAST, fewer).peak_p95_s > FAST.target_s
    point = closed_form_point([FAST])
    more = {**point, "fast.min_replicas": point["fast.min_replicas"] + 2, "fast.max_replicas": 12}
    assert score([FAST], point) > score([FAST], more) > score([FAST], {**point, "fast.max_replicas": 1})


def test_a_plan_becomes_resources_with_accelerators_for_a_gpu_model():
    point = closed_form_point([FAST, GPU])
    scalings = {d.agent: scaling_of(d.agent, point) for d in (FAST, GPU)}
    result = ResourcePlan(scalings=scalings, assessments={d.agent: assess(d, scalings[d.agent]) for d in (FAST, GPU)},
                          start_cost=0.0, trials=1, seconds=0.0)
    out = resources_of([FAST, GPU], result)
    assert out["big.accelerators"] == scalings["big"].max_replicas * 1.0 and "fast.accelerators" not in out
    assert out["fast.min_replicas"] == float(scalings["fast"].min_replicas)
    assert out["big.target_ongoing_requests"] == pytest.approx(scalings["big"].target_ongoing_requests, abs=1e-3)


def test_an_agent_slower_than_its_target_names_the_agent():
    slow = AgentDemand("slow", AgentLoad(1.0, 1.0, 3.0, slots=1), target_s=4.0)
    with pytest.raises(ValueError, match="agent slow: the service time alone"):
        closed_form_point([slow])
